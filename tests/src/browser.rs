//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs). Each `Browser` runs its own chromedriver
//! on a free port and ends it when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

pub struct Browser {
    pub client: Client,
    driver: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn binary(name: &str, fallback: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fallback.to_owned())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280×900.
    pub async fn start() -> Browser {
        Self::start_with(&["--window-size=1280,900"]).await
    }

    /// Whether `SWITCHYARD_SCREENSHOTS=1` asks for the docs' pictures.
    pub fn screenshots_wanted() -> bool {
        std::env::var("SWITCHYARD_SCREENSHOTS").as_deref() == Ok("1")
    }

    /// Starts chromedriver and a headless Chromium with these extra arguments (a window
    /// size, `--force-dark-mode`).
    pub async fn start_with(extra: &[&str]) -> Browser {
        Self::launch(extra, None, None).await
    }

    /// A desktop browser whose clock reads in time zone `zone` (`Asia/Tokyo`).
    pub async fn in_zone(zone: &str) -> Browser {
        Self::launch(&["--window-size=1280,900"], None, Some(zone)).await
    }

    /// A phone's screen, 390×844 CSS pixels (headless windows are never narrower than
    /// 500, so the phone is emulated), light or dark.
    pub async fn phone(dark: bool) -> Browser {
        let metrics = serde_json::json!({
            "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": true},
        });
        let args: &[&str] = if dark { &["--force-dark-mode"] } else { &[] };
        Self::launch(args, Some(metrics), None).await
    }

    async fn launch(
        extra: &[&str],
        mobile: Option<serde_json::Value>,
        zone: Option<&str>,
    ) -> Browser {
        // Two TLS backends are linked into the test binary; the WebDriver client (plain
        // HTTP on loopback) needs one chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let mut driver = Command::new(binary("CHROMEDRIVER", "/usr/bin/chromedriver"));
        if let Some(zone) = zone {
            driver.env("TZ", zone);
        }
        let driver = driver
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium-driver)");
        let args: Vec<&str> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--force-prefers-reduced-motion",
        ]
        .iter()
        .chain(extra)
        .copied()
        .collect();
        let mut caps = serde_json::Map::new();
        let mut options = serde_json::json!({
            "binary": binary("CHROMIUM", "/usr/bin/chromium"),
            "args": args,
        });
        if let Some(mobile) = mobile {
            options["mobileEmulation"] = mobile;
        }
        caps.insert("goog:chromeOptions".to_owned(), options);
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return Browser { client, driver },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }

    pub async fn go(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_owned()
    }

    /// Waits for the browser to arrive at a path starting with `prefix`.
    pub async fn wait_for_path(&self, prefix: &str) -> String {
        for _ in 0..100 {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return path;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "never reached {prefix}; at {}:\n{}",
            self.path().await,
            self.text().await
        );
    }

    /// Types into the field with this id (clearing it first).
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// The current value of the field with this id.
    pub async fn value(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// Chooses the option labelled `label` in the select with this id.
    pub async fn choose(&self, id: &str, label: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .select_by_label(label)
            .await
            .unwrap_or_else(|e| panic!("no {label:?} in #{id}: {e}"));
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing matches {css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    /// The page's visible text; empty while a navigation replaces the page.
    /// The first time on the page that reads in the viewer's zone: what it shows, and
    /// its UTC title.
    pub async fn first_time(&self) -> (String, String) {
        let got = self
            .client
            .execute(
                "const t = document.querySelector('time[data-local]'); \
                 return [t.textContent, t.title];",
                vec![],
            )
            .await
            .expect("script");
        (
            got[0].as_str().unwrap().to_owned(),
            got[1].as_str().unwrap().to_owned(),
        )
    }

    /// How wide the page is laid out, and how wide the window shows it, in CSS pixels.
    pub async fn widths(&self) -> (u64, u64) {
        let got = self
            .client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .expect("script");
        (got[0].as_u64().unwrap(), got[1].as_u64().unwrap())
    }

    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the page's text contains `text`, reloading `reload` between looks
    /// when given.
    pub async fn wait_for_text(&self, text: &str, reload: Option<&str>) {
        for _ in 0..100 {
            if self.text().await.contains(text) {
                return;
            }
            if let Some(url) = reload {
                self.go(url).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{text:?} never appeared:\n{}", self.text().await);
    }

    /// Saves a PNG of the viewport as `docs/screenshots/{name}.png` when
    /// `SWITCHYARD_SCREENSHOTS=1`: the pictures in the docs are refreshed on purpose, not
    /// rewritten (with new ids and times) by every test run.
    pub async fn screenshot(&self, name: &str) {
        if !Self::screenshots_wanted() {
            return;
        }
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
