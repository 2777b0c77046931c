//! The browser front of a public server: gRPC-Web on the very services the native listener
//! serves, plus a few static files (a page) on the same origin.
//!
//! Browsers cannot speak native gRPC (no trailers, no HTTP/2 control), so the web listener
//! answers HTTP/1.1 (and h2c or, with `[server.tls]`, TLS with ALPN) and translates
//! `application/grpc-web*` requests into gRPC calls. They go through the same tower stack as
//! native calls — trace context, metrics, deadline, bearer token, admission — and share its
//! admission slots, so a browser cannot get around the limits. Only the services added with
//! [`crate::server::GrpcServer::add_service`] are reachable: health and reflection stay native.
//!
//! Cross-origin callers are refused unless `[web] allowed_origins` names them (CORS);
//! the page itself is same-origin and needs no CORS at all.

use std::{convert::Infallible, future::Future, time::Duration};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{
        conn::auto,
        graceful::{GracefulShutdown, Watcher},
    },
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::body::Body;
use tower::{ServiceExt, util::BoxCloneSyncService};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::RuntimeError;

/// The web listener of a public server (`[web]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address of the HTTP listener serving the page and gRPC-Web; empty: no web listener.
    pub listen: String,
    /// Serve the page (and its samples) at `/`; off: gRPC-Web only.
    pub page: bool,
    /// Origins other than the page's own (`scheme://host[:port]`) whose scripts may call
    /// gRPC-Web (CORS); `"*"` allows any. Empty: same-origin only.
    pub allowed_origins: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            page: true,
            allowed_origins: Vec::new(),
        }
    }
}

impl WebConfig {
    /// Whether a web listener is configured.
    pub fn is_enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// Checks the origins, so a typo stops the service at start-up.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        for origin in &self.allowed_origins {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(RuntimeError::InvalidConfig(format!(
                    "web.allowed_origins: {origin:?} is not an origin \
                     (scheme://host[:port] without a path, or \"*\")"
                )));
            }
        }
        Ok(())
    }

    fn cors(&self) -> Option<CorsLayer> {
        if self.allowed_origins.is_empty() {
            return None;
        }
        let origins = if self.allowed_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.allowed_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::POST, Method::OPTIONS])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    header::HeaderName::from_static("x-grpc-web"),
                    header::HeaderName::from_static("x-user-agent"),
                    header::HeaderName::from_static("grpc-timeout"),
                    header::HeaderName::from_static("traceparent"),
                    header::HeaderName::from_static("tracestate"),
                ])
                .expose_headers([
                    header::HeaderName::from_static("grpc-status"),
                    header::HeaderName::from_static("grpc-message"),
                    header::HeaderName::from_static("grpc-status-details-bin"),
                ])
                .max_age(Duration::from_secs(3600)),
        )
    }
}

/// One static file of the page.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Request path, e.g. `/` or `/app.js`.
    pub path: &'static str,
    /// `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// The gRPC side as the web listener calls it: native gRPC in, native gRPC out.
pub(crate) type GrpcService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Content-Security-Policy of the page: everything from its own origin, images also from
/// `blob:` (the restored result) and `data:`.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; \
    connect-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The web listener, ready to serve.
#[derive(Debug)]
pub struct WebFront {
    pub(crate) listener: TcpListener,
    pub(crate) config: WebConfig,
    pub(crate) assets: &'static [Asset],
}

impl WebFront {
    /// A web front on `listener` (bound to `config.listen` by the caller) serving `assets`
    /// when `config.page` is on.
    pub fn new(
        listener: TcpListener,
        config: WebConfig,
        assets: &'static [Asset],
    ) -> Result<Self, RuntimeError> {
        config.validate()?;
        Ok(Self {
            listener,
            config,
            assets,
        })
    }
}

fn is_grpc_web(request: &Request<Incoming>) -> bool {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    content_type.starts_with("application/grpc-web")
        || (request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(
        hyper::body::Bytes::from_static(text.as_bytes()),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn asset(request: &Request<Incoming>, page: Option<&'static [Asset]>) -> Response<Body> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET, HEAD and gRPC-Web POST are served here\n",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
        return response;
    }
    let path = request.uri().path();
    let path = if path == "/index.html" { "/" } else { path };
    let Some(found) = page.and_then(|assets| assets.iter().find(|a| a.path == path)) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let body = if request.method() == Method::HEAD {
        Body::empty()
    } else {
        Body::new(http_body_util::Full::new(hyper::body::Bytes::from_static(
            found.body,
        )))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(found.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(found.body.len()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    response
}

/// One connection (plain or TLS): gRPC-Web requests to `grpc_web`, anything else to the page's
/// files; `watcher` lets the shutdown wait for it.
async fn serve_connection<I>(
    io: I,
    grpc_web: GrpcService,
    page: Option<&'static [Asset]>,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handler = hyper::service::service_fn(move |request: Request<Incoming>| {
        let grpc_web = grpc_web.clone();
        async move {
            if is_grpc_web(&request) {
                grpc_web.oneshot(request.map(Body::new)).await
            } else {
                Ok::<_, Infallible>(asset(&request, page))
            }
        }
    });
    let connection = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), handler)
        .into_owned();
    watcher.watch(connection).await
}

/// Serves the web front until `shutdown` resolves, then stops accepting and lets open
/// connections finish (the caller bounds how long).
pub(crate) async fn serve(
    front: WebFront,
    grpc: GrpcService,
    tls: Option<crate::tls::ReloadingServerTls>,
    service: &'static str,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RuntimeError> {
    let WebFront {
        listener,
        config,
        assets,
    } = front;
    let grpc_web = {
        let stack = tower::ServiceBuilder::new()
            .option_layer(config.cors())
            .layer(tonic_web::GrpcWebLayer::new())
            .service(grpc);
        GrpcService::new(stack)
    };
    let page = config.page.then_some(assets);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(service, %error, "web listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The certificates in use now (they follow their files; see `tls`).
        let acceptor = tls
            .as_ref()
            .map(crate::tls::ReloadingServerTls::web_acceptor);
        let (grpc_web, watcher) = (grpc_web.clone(), graceful.watcher());
        tokio::spawn(async move {
            let served = match acceptor {
                None => serve_connection(stream, grpc_web, page, watcher).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => serve_connection(stream, grpc_web, page, watcher).await,
                    Err(error) => {
                        tracing::debug!(service, %peer, %error, "web TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(error) = served {
                tracing::debug!(service, %peer, %error, "web connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::WebConfig;

    #[test]
    fn a_malformed_origin_is_named() {
        for origin in ["app.example.com", "https://app.example.com/", "ftp://x"] {
            let config = WebConfig {
                allowed_origins: vec![origin.to_owned()],
                ..WebConfig::default()
            };
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("web.allowed_origins"), "{error}");
            assert!(error.contains(origin), "{error}");
        }
        for origin in ["*", "https://app.example.com", "http://127.0.0.1:3000"] {
            let config = WebConfig {
                allowed_origins: vec![origin.to_owned()],
                ..WebConfig::default()
            };
            assert!(config.validate().is_ok(), "{origin}");
            assert!(config.cors().is_some());
        }
        assert!(
            WebConfig::default().cors().is_none(),
            "same origin only by default"
        );
        assert!(!WebConfig::default().is_enabled());
    }
}
