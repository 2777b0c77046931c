//! The restore page: static files compiled into the binary (no build step, nothing from a
//! CDN), served with gRPC-Web on the orchestrator's web front.

use clearair_runtime::web::Asset;

macro_rules! file {
    ($path:literal, $name:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $name)),
        }
    };
}

/// The photos the page offers as samples: the degraded sample photos of the repository.
macro_rules! sample {
    ($name:literal) => {
        Asset {
            path: concat!("/samples/", $name, ".png"),
            content_type: "image/png",
            body: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/samples/",
                $name,
                ".png"
            )),
        }
    };
}

/// Every file of the page, by request path.
pub(crate) const ASSETS: &[Asset] = &[
    file!("/", "index.html", "text/html; charset=utf-8"),
    file!("/app.js", "app.js", "text/javascript; charset=utf-8"),
    file!("/wire.js", "wire.js", "text/javascript; charset=utf-8"),
    file!("/style.css", "style.css", "text/css; charset=utf-8"),
    file!("/favicon.svg", "favicon.svg", "image/svg+xml"),
    sample!("noisy-coffee"),
    sample!("hazy-building"),
    sample!("rainy-motorcycle"),
    sample!("blurry-butterfly"),
    sample!("dark-chelsea"),
];

#[cfg(test)]
mod tests {
    use super::ASSETS;

    #[test]
    fn every_file_the_page_names_is_served() {
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        let app = std::str::from_utf8(ASSETS[1].body).unwrap();
        let mut named = Vec::new();
        for text in [index, app] {
            for quote in ['"', '`'] {
                for part in text.split(quote).skip(1).step_by(2) {
                    if part.starts_with('/') && !part.starts_with("//") && !part.contains(' ') {
                        named.push(part.to_owned());
                    }
                }
            }
        }
        for name in [
            "noisy-coffee",
            "hazy-building",
            "rainy-motorcycle",
            "blurry-butterfly",
            "dark-chelsea",
        ] {
            assert!(
                index.contains(&format!("data-sample=\"{name}\"")),
                "{name} offered"
            );
        }
        let paths: Vec<_> = ASSETS.iter().map(|a| a.path).collect();
        for path in named
            .iter()
            .filter(|p| !p.contains("${") && !p.starts_with("/clearair.v1."))
        {
            assert!(
                paths.contains(&path.as_str()),
                "{path} is named by the page but not served"
            );
        }
        assert!(
            named.iter().any(|p| p == "/wire.js"),
            "the page's module imports were found"
        );
    }
}
