//! A query string read as `T`, as `web::Query` reads it (a misfit answered as
//! `error::query_config` says), but refused first when a parameter holds a NUL
//! character, which PostgreSQL cannot store: a 422 problem naming it under `/api`, the
//! bad-request page elsewhere.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use switchyard_domain::app::FieldError;
use switchyard_problem::Problem;

use crate::body::field_holding_nul;
use crate::dashboard::PageError;
use crate::error::ApiError;

pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let holding_nul =
            field_holding_nul(url::form_urlencoded::parse(req.query_string().as_bytes()));
        let refusal = holding_nul.map(|name| -> actix_web::Error {
            if req.path().starts_with("/api/") {
                let field =
                    FieldError::new(&format!("query.{name}"), "must not contain a NUL character");
                ApiError(Problem::invalid(vec![field])).into()
            } else {
                PageError::BadRequest(format!(
                    "the {name} parameter holds a NUL character, which Switchyard cannot store"
                ))
                .into()
            }
        });
        let query = web::Query::<T>::from_request(req, payload);
        Box::pin(async move {
            match refusal {
                Some(refused) => Err(refused),
                None => Ok(Query(query.await?.into_inner())),
            }
        })
    }
}
