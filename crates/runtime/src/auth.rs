//! An optional bearer token on a server's own services (`[server.auth]`): a call without
//! `authorization: Bearer <token>`, or with another token, is answered UNAUTHENTICATED before
//! it reaches admission control or the handler.
//!
//! Meant for the public `clearair.v1.ClearAir` API. Health and reflection stay open, so
//! Kubernetes probes (which cannot send metadata) and `grpcurl list` keep working; the
//! schema they reveal is the published `proto/`. Inside the mesh the orchestrator sends no
//! token: the model services are guarded by mutual TLS and the NetworkPolicy instead.

use std::{
    fmt,
    path::PathBuf,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::{Either, Ready, ready};
use serde::{Deserialize, Serialize};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use crate::RuntimeError;

/// Bearer-token settings (`[server.auth]`); no token configured means no check.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The token clients must send as `authorization: Bearer <token>`; set it through the
    /// environment (`CLEARAIR_ORCHESTRATOR__SERVER__AUTH__BEARER_TOKEN`) rather than a file
    /// under version control. Empty: see `bearer_token_file`.
    pub bearer_token: String,
    /// A file holding the token (a mounted Kubernetes or compose secret), read at start-up;
    /// surrounding whitespace is ignored. Used when `bearer_token` is empty.
    pub bearer_token_file: PathBuf,
}

impl fmt::Debug for AuthConfig {
    // Secrets never reach logs, even through `{config:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.bearer_token.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("AuthConfig")
            .field("bearer_token", &token)
            .field("bearer_token_file", &self.bearer_token_file)
            .finish()
    }
}

impl AuthConfig {
    /// The token to check, if any: `bearer_token`, else the contents of `bearer_token_file`.
    pub fn token(&self) -> Result<Option<String>, RuntimeError> {
        if !self.bearer_token.is_empty() && !self.bearer_token_file.as_os_str().is_empty() {
            return Err(RuntimeError::InvalidConfig(
                "server.auth: set bearer_token or bearer_token_file, not both".to_owned(),
            ));
        }
        let token = if !self.bearer_token.is_empty() {
            self.bearer_token.clone()
        } else if !self.bearer_token_file.as_os_str().is_empty() {
            let contents = std::fs::read_to_string(&self.bearer_token_file).map_err(|e| {
                RuntimeError::InvalidConfig(format!(
                    "server.auth.bearer_token_file: cannot read {}: {e}",
                    self.bearer_token_file.display()
                ))
            })?;
            let token = contents.trim().to_owned();
            if token.is_empty() {
                return Err(RuntimeError::InvalidConfig(format!(
                    "server.auth.bearer_token_file: {} is empty",
                    self.bearer_token_file.display()
                )));
            }
            token
        } else {
            return Ok(None);
        };
        // A token is an HTTP header value; one that cannot be sent could never match.
        if token.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(RuntimeError::InvalidConfig(
                "server.auth: the bearer token must be printable ASCII without spaces".to_owned(),
            ));
        }
        Ok(Some(token))
    }
}

/// Compares in time independent of where the first difference is, so response timing does not
/// reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a request's `authorization` metadata against `token`.
fn check(headers: &http::HeaderMap, token: &[u8]) -> Result<(), Status> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(Status::unauthenticated(
            "missing `authorization: Bearer <token>` metadata",
        ));
    };
    let presented = value.as_bytes();
    // RFC 6750: the scheme is case-insensitive.
    let scheme = b"bearer ";
    if presented.len() < scheme.len() || !presented[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return Err(Status::unauthenticated(
            "the `authorization` metadata must be `Bearer <token>`",
        ));
    }
    if constant_time_eq(&presented[scheme.len()..], token) {
        Ok(())
    } else {
        Err(Status::unauthenticated("invalid bearer token"))
    }
}

/// Tower layer requiring the bearer token on a gRPC service; passes everything through when
/// no token is configured.
#[derive(Clone, Default)]
pub struct BearerAuthLayer {
    token: Option<Arc<[u8]>>,
}

impl fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

impl BearerAuthLayer {
    /// Requires `token` when it is `Some`.
    pub fn new(token: Option<String>) -> Self {
        Self {
            token: token.map(|t| Arc::from(t.into_bytes())),
        }
    }

    /// Whether calls are checked.
    pub fn is_enabled(&self) -> bool {
        self.token.is_some()
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            token: self.token.clone(),
        }
    }
}

/// A gRPC service that answers UNAUTHENTICATED unless the call carries the bearer token.
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    token: Option<Arc<[u8]>>,
}

impl<S: fmt::Debug> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

impl<S: NamedService> NamedService for BearerAuth<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for BearerAuth<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(token) = &self.token
            && let Err(status) = check(request.headers(), token)
        {
            return Either::Right(ready(Ok(status.into_http())));
        }
        Either::Left(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::ServiceExt;

    use super::*;

    fn echo() -> impl Service<
        http::Request<()>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(|_request: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        })
    }

    async fn call(layer: &BearerAuthLayer, authorization: Option<&str>) -> Option<Status> {
        let mut request = http::Request::new(());
        if let Some(value) = authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.parse().unwrap());
        }
        let response = layer.layer(echo()).oneshot(request).await.unwrap();
        Status::from_header_map(response.headers())
    }

    #[tokio::test]
    async fn only_the_right_token_passes() {
        let layer = BearerAuthLayer::new(Some("s3cret-token".to_owned()));
        assert!(call(&layer, Some("Bearer s3cret-token")).await.is_none());
        assert!(
            call(&layer, Some("bearer s3cret-token")).await.is_none(),
            "the scheme is case-insensitive"
        );
        for (presented, reason) in [
            (None, "missing"),
            (Some("Bearer s3cret-tokem"), "invalid bearer token"),
            (Some("Bearer s3cret-token2"), "invalid bearer token"),
            (Some("Bearer "), "invalid bearer token"),
            (Some("Basic czNjcmV0LXRva2Vu"), "must be `Bearer <token>`"),
            (Some("s3cret-token"), "must be `Bearer <token>`"),
        ] {
            let status = call(&layer, presented).await.expect("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{presented:?}");
            assert!(
                status.message().contains(reason),
                "{presented:?}: {}",
                status.message()
            );
        }
    }

    #[tokio::test]
    async fn no_token_configured_means_no_check() {
        let layer = BearerAuthLayer::new(None);
        assert!(!layer.is_enabled());
        assert!(call(&layer, None).await.is_none());
        assert!(call(&layer, Some("Bearer anything")).await.is_none());
    }

    #[test]
    fn token_from_a_file_is_trimmed_and_both_sources_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-a-secret\n").unwrap();
        let config = AuthConfig {
            bearer_token_file: file.clone(),
            ..AuthConfig::default()
        };
        assert_eq!(config.token().unwrap().as_deref(), Some("from-a-secret"));
        let both = AuthConfig {
            bearer_token: "inline".to_owned(),
            bearer_token_file: file,
        };
        assert!(both.token().unwrap_err().to_string().contains("not both"));
        assert_eq!(AuthConfig::default().token().unwrap(), None);
    }

    #[test]
    fn unsendable_tokens_are_refused_and_secrets_are_not_printed() {
        let spaced = AuthConfig {
            bearer_token: "two words".to_owned(),
            ..AuthConfig::default()
        };
        assert!(spaced.token().is_err());
        let secret = AuthConfig {
            bearer_token: "hunter2".to_owned(),
            ..AuthConfig::default()
        };
        let printed = format!("{secret:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn comparison_needs_equal_length_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
