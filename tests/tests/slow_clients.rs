//! Clients that would hold the server, over raw sockets: a body that stalls or trickles
//! is answered 408 within the deadline and its connection closed, on pages anyone may
//! reach; one address holding too many connections has its next one closed at once.

use std::time::{Duration, Instant};

use switchyard_tests::TestApp;
use switchyard_tests::app::Options;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.url("").trim_start_matches("http://").to_owned();
    TcpStream::connect(addr).await.unwrap()
}

/// Everything the server writes until it closes the connection (or 10 s pass).
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

fn head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: switchyard.test\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_that_stalls_or_trickles_is_answered_408_and_its_connection_closed() {
    let app = TestApp::spawn_with(Options {
        body_timeout: Some(1),
        ..Options::default()
    })
    .await;
    let source = app.create_source("none", None).await;
    let hook = source["ingest_url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.url(""))
        .to_owned();
    for path in ["/login", "/signup", hook.as_str()] {
        // Stalls after a few bytes.
        let started = Instant::now();
        let mut stalled = connect(&app).await;
        stalled.write_all(head(path, 100).as_bytes()).await.unwrap();
        stalled.write_all(b"email=a").await.unwrap();
        let answer = until_closed(&mut stalled).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");

        // Trickles a byte every 200 ms: never finishes within the deadline.
        let mut trickle = connect(&app).await;
        trickle.write_all(head(path, 100).as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut answer = String::new();
        for _ in 0..40 {
            if trickle.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut buf)).await
            {
                answer.push_str(&String::from_utf8_lossy(&buf[..n]));
                break;
            }
        }
        answer.push_str(&until_closed(&mut trickle).await);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{path} trickled: {answer}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} trickled"
        );
    }
    // A route that answers without reading the body closes the connection: the unread
    // body cannot hold it.
    let started = Instant::now();
    let mut unread = connect(&app).await;
    unread
        .write_all(head("/hooks/no-such-token", 100).as_bytes())
        .await
        .unwrap();
    let answer = until_closed(&mut unread).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A body that arrives in time is read as usual, and the connection stays open for
    // the next request.
    let mut prompt = connect(&app).await;
    let body = "x=1";
    prompt
        .write_all(format!("{}{body}", head(&hook, body.len())).as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = prompt.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
}

#[tokio::test]
async fn an_address_over_its_connection_cap_has_its_next_connection_closed() {
    let app = TestApp::spawn_with(Options {
        max_connections_per_client: Some(3),
        ..Options::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app).await);
    }
    // Give the server a moment to count them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect(&app).await;
    let _ = over
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: switchyard.test\r\n\r\n")
        .await;
    let answer = until_closed(&mut over).await;
    assert!(!answer.contains("200 OK"), "over the cap: {answer}");

    // One closes: there is room again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut room = connect(&app).await;
    room.write_all(b"GET /healthz HTTP/1.1\r\nHost: switchyard.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut room).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
