//! Lists: `{"data": […], "next_cursor": …}`, paged with `cursor` and `limit`.

use serde::{Deserialize, Serialize};
use switchyard_domain::model::{Page, PageRequest};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 250 (default 50).
    pub limit: Option<u32>,
}

impl Paging {
    pub fn request(&self) -> PageRequest {
        PageRequest {
            cursor: self.cursor.clone(),
            limit: self
                .limit
                .unwrap_or(PageRequest::DEFAULT_LIMIT)
                .clamp(1, PageRequest::MAX_LIMIT),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    pub fn from_page<S>(page: Page<S>, f: impl FnMut(S) -> T) -> Self {
        List {
            data: page.items.into_iter().map(f).collect(),
            next_cursor: page.next_cursor,
        }
    }
}
