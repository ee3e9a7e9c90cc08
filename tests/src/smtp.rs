//! A real SMTP server for the email tests (mailin-embedded, on a thread of its own),
//! recording each message it accepts and answering as scripted: a reply code for each
//! message's `MAIL FROM` (`250`, a transient `451`, a permanent `550`), the last one
//! repeating.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::{self, Response};
use mailin_embedded::{Handler, Server, SslConfig};

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

impl Mail {
    pub fn parsed(&self) -> mailparse::ParsedMail<'_> {
        mailparse::parse_mail(&self.raw).expect("a parsable message")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        use mailparse::MailHeaderMap;
        self.parsed().headers.get_first_value(name)
    }

    /// The first link in the text part that starts with `base` + `prefix`, as a path.
    pub fn link(&self, base: &str, prefix: &str) -> String {
        let text = self.part("text/plain").expect("a text part");
        let start = format!("{base}{prefix}");
        let url = text
            .split_whitespace()
            .find(|w| w.starts_with(&start))
            .unwrap_or_else(|| panic!("no {prefix} link in {text}"));
        url.trim_start_matches(base).to_owned()
    }

    /// The decoded body of the first part with this content type.
    pub fn part(&self, mime: &str) -> Option<String> {
        fn find(part: &mailparse::ParsedMail<'_>, mime: &str) -> Option<String> {
            if part.ctype.mimetype == mime {
                return part.get_body().ok();
            }
            part.subparts.iter().find_map(|p| find(p, mime))
        }
        find(&self.parsed(), mime)
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<u16>,
    accepted: Vec<Mail>,
    /// Messages begun (`MAIL FROM`), accepted or not.
    attempts: usize,
}

#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<State>>,
    current: Mail,
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        let mut state = self.state.lock().expect("lock");
        state.attempts += 1;
        let code = if state.script.len() > 1 {
            state.script.pop_front().unwrap_or(250)
        } else {
            state.script.front().copied().unwrap_or(250)
        };
        if code == 250 {
            response::OK
        } else {
            Response::custom(code, format!("scripted {code}"))
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Mail {
            from: from.to_owned(),
            to: to.to_vec(),
            raw: Vec::new(),
        };
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.raw.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mut state = self.state.lock().expect("lock");
        state.accepted.push(self.current.clone());
        response::OK
    }
}

#[derive(Clone)]
pub struct SmtpServer {
    state: Arc<Mutex<State>>,
    pub url: String,
}

impl SmtpServer {
    pub fn start(script: Vec<u16>) -> SmtpServer {
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind smtp");
        let url = format!("smtp://{}", listener.local_addr().expect("addr"));
        let mut server = Server::new(Recorder {
            state: state.clone(),
            current: Mail {
                from: String::new(),
                to: Vec::new(),
                raw: Vec::new(),
            },
        });
        server
            .with_name("smtp.test")
            .with_ssl(SslConfig::None)
            .expect("no tls")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer { state, url }
    }

    pub fn script(&self, codes: Vec<u16>) {
        self.state.lock().expect("lock").script = codes.into();
    }

    pub fn accepted(&self) -> Vec<Mail> {
        self.state.lock().expect("lock").accepted.clone()
    }

    pub fn attempts(&self) -> usize {
        self.state.lock().expect("lock").attempts
    }

    /// Waits until `n` messages were accepted; panics after `within`.
    /// The latest of the first `n` messages addressed to `to` alone.
    pub async fn mail_to(&self, n: usize, to: &str) -> Mail {
        self.wait_for(n, Duration::from_secs(10))
            .await
            .into_iter()
            .rfind(|m| m.to == [to])
            .unwrap_or_else(|| panic!("no mail to {to}"))
    }

    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} emails within {within:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
