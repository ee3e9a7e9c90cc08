//! The black-box harness. `TestApp::spawn` gives each test its own database (cloned from
//! a migrated template), Switchyard on port 0 with every role, a team and an API key.
//! `Receiver` is a destination that records what it gets and answers as scripted;
//! `DbProxy` sits between the app and PostgreSQL so a test can take the database away;
//! `fakes` holds the third parties (routines API, Slack) Switchyard calls.

pub mod app;
pub mod browser;
pub mod cluster;
pub mod contract;
pub mod db;
pub mod fake_anthropic;
pub mod fakes;
pub mod furnished;
pub mod proxy;
pub mod receiver;
pub mod sender;
pub mod sign;
pub mod smtp;
pub mod visitor;
mod webhooks;

pub use app::TestApp;
pub use fake_anthropic::{FakeAnthropic, Trouble};
pub use fakes::{Answer, FakeRoutines, FakeSlack, SlackAnswer};
pub use proxy::DbProxy;
pub use receiver::{Receiver, Reply};
pub use smtp::SmtpServer;
pub use visitor::{Page, Visitor};
