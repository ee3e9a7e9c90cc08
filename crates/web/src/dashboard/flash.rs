//! What a page shows once after a form's redirect (Post/Redirect/Get): a new API key or
//! signing secret, a notice that something was saved, what a test send came to. The
//! form's handler puts a flash and redirects to a page whose URL names it (`?flash=…`);
//! that page takes it, so a reload or going back shows it no more and submits nothing
//! again. Flashes are sealed like every secret, readable only by the user whose form
//! made them, and expire after ten minutes. [`Flash`] is what most pages show; a page
//! that shows more reads its own type.

use chrono::{Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use switchyard_domain::store::flashes;

use super::error::PageError;
use super::session::Viewer;
use crate::WebState;

const LIFETIME: Duration = Duration::minutes(10);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// What was done, in a sentence ("Saved.").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// A secret shown this once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Why nothing was done, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Flash {
    pub fn notice(text: impl Into<String>) -> Flash {
        Flash {
            notice: Some(text.into()),
            ..Flash::default()
        }
    }

    pub fn secret(notice: impl Into<String>, secret: String) -> Flash {
        Flash {
            notice: Some(notice.into()),
            secret: Some(secret),
            problem: None,
        }
    }

    pub fn problem(text: impl Into<String>) -> Flash {
        Flash {
            problem: Some(text.into()),
            ..Flash::default()
        }
    }
}

/// The query a page that shows flashes reads.
#[derive(Debug, Default, Deserialize)]
pub struct FlashQuery {
    pub flash: Option<String>,
}

/// Keeps `flash` for the viewer; `path` with the query that names it.
pub async fn put(
    state: &WebState,
    viewer: &Viewer,
    flash: &impl Serialize,
    path: &str,
) -> Result<String, PageError> {
    let id = keep(state, viewer, flash).await?;
    let (path, anchor) = path.split_once('#').unwrap_or((path, ""));
    let joiner = if path.contains('?') { '&' } else { '?' };
    let anchor = if anchor.is_empty() {
        String::new()
    } else {
        format!("#{anchor}")
    };
    Ok(format!("{path}{joiner}flash={id}{anchor}"))
}

/// Keeps `value` for the viewer to take once within ten minutes; its id.
pub async fn keep(
    state: &WebState,
    viewer: &Viewer,
    value: &impl Serialize,
) -> Result<String, PageError> {
    let json = serde_json::to_vec(value).map_err(|_| PageError::Internal)?;
    let sealed = state.key.seal(&json);
    let now = Utc::now();
    let mut conn = state.pool.acquire().await?;
    Ok(flashes::put(&mut conn, &viewer.user.id, &sealed, now, now + LIFETIME).await?)
}

/// The notice of the flash the query names, for a page that shows nothing else once.
pub async fn notice(
    state: &WebState,
    viewer: &Viewer,
    query: &FlashQuery,
) -> Result<Option<String>, PageError> {
    Ok(take::<Flash>(state, viewer, query)
        .await?
        .and_then(|f| f.notice))
}

/// The flash the query names, if it is the viewer's and still there; taking it removes
/// it.
pub async fn take<T: DeserializeOwned>(
    state: &WebState,
    viewer: &Viewer,
    query: &FlashQuery,
) -> Result<Option<T>, PageError> {
    let Some(id) = query.flash.as_deref() else {
        return Ok(None);
    };
    let mut conn = state.pool.acquire().await?;
    let sealed = flashes::take(&mut conn, &viewer.user.id, id, Utc::now()).await?;
    open(state, sealed)
}

/// What [`keep`] kept under `id`, left in place until it expires: a form kept while
/// the person makes something it needs reads the same on a reload.
pub async fn read<T: DeserializeOwned>(
    state: &WebState,
    viewer: &Viewer,
    id: &str,
) -> Result<Option<T>, PageError> {
    let mut conn = state.pool.acquire().await?;
    let sealed = flashes::peek(&mut conn, &viewer.user.id, id, Utc::now()).await?;
    open(state, sealed)
}

fn open<T: DeserializeOwned>(
    state: &WebState,
    sealed: Option<Vec<u8>>,
) -> Result<Option<T>, PageError> {
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let json = state.key.open(&sealed).map_err(|_| PageError::Internal)?;
    Ok(serde_json::from_slice(&json).ok())
}
