//! Lists: `{"data": […], "next_cursor": …}`, paged with `cursor` and `limit`.

use serde::{Deserialize, Serialize};
use switchyard_domain::app::AppError;
use switchyard_domain::model::{Page, PageRequest};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
}

impl Paging {
    /// The page asked for; a limit outside 1 to 250 is refused, not bent.
    pub fn request(&self) -> Result<PageRequest, AppError> {
        let limit = self.limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
        if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
            return Err(AppError::field(
                "limit",
                format!("must be between 1 and {}", PageRequest::MAX_LIMIT),
            ));
        }
        Ok(PageRequest {
            cursor: self.cursor.clone(),
            limit,
        })
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
