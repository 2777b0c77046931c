//! The crate layout the README promises: what computes (`crates/*` libraries) never links a
//! service crate (`services/*`, transport and handlers); only the in-process mesh
//! (`crates/mesh`) and the end-to-end tests use services, and the command (`crates/cli`)
//! reaches them through the mesh. Read from `cargo metadata`, so
//! a dependency added in any manifest, normal or dev, is caught.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use clearair_e2e::workspace;
use serde_json::Value;

/// Crates allowed to depend on services: the in-process mesh runs them, the end-to-end tests
/// configure them.
const RUNS_SERVICES: [&str; 2] = ["clearair-mesh", "clearair-e2e"];

#[test]
fn no_library_depends_on_a_service_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let root = workspace().canonicalize().expect("workspace path");
    let mut services = BTreeSet::new();
    let mut dependencies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_owned();
        let manifest = std::path::Path::new(package["manifest_path"].as_str().expect("path"));
        if manifest.starts_with(root.join("services")) {
            services.insert(name.clone());
        }
        let names = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| d["name"].as_str().expect("dependency name").to_owned())
            .collect();
        dependencies.insert(name, names);
    }
    assert_eq!(services.len(), 5, "five service crates: {services:?}");
    let mut offenders = Vec::new();
    for (crate_name, uses) in &dependencies {
        if services.contains(crate_name) || RUNS_SERVICES.contains(&crate_name.as_str()) {
            continue;
        }
        for used in uses.iter().filter(|u| services.contains(*u)) {
            offenders.push(format!("{crate_name} → {used}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "libraries depending on a service crate: {offenders:?}"
    );
    // A service crate serves one thing: it does not link another service either.
    for service in &services {
        let peers: Vec<_> = dependencies[service]
            .iter()
            .filter(|u| services.contains(*u))
            .collect();
        assert!(peers.is_empty(), "{service} links {peers:?}");
    }
}
