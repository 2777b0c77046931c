//! `deploy/scripts/grow_refinement.py`, which adds refinement blocks to a trained restorer:
//! the grown network restores an image exactly as the one it grew from, the new blocks are
//! on the forward path (a non-zero output projection in one of them changes the result), and
//! bad counts or weights without their manifest are refused with a message.

use std::path::Path;
use std::process::{Command, Output};

use clearair_e2e::{python, workspace};
use clearair_model::{Priors, parameter_count};
use clearair_train::networks::load_restorer;
use tch::{Device, Kind, Tensor};

fn grow(out: &Path, source: &Path, count: &str) -> Output {
    Command::new(python())
        .arg(workspace().join("deploy/scripts/grow_refinement.py"))
        .arg(out)
        .arg(source)
        .arg(count)
        .output()
        .expect("the script runs")
}

#[test]
fn grown_refinement_blocks_restore_as_the_network_they_grew_from() {
    let dir = tempfile::tempdir().unwrap();
    let committed = workspace().join("models/clearair-compact.safetensors");
    let grown = dir.path().join("grown.safetensors");
    let run = grow(&grown, &committed, "2");
    assert!(run.status.success(), "{run:?}");

    let before = load_restorer(&committed, Device::Cpu).expect("the committed restorer");
    let after = load_restorer(&grown, Device::Cpu).expect("the grown restorer and manifest");
    let (old, new) = (before.network.config(), after.network.config());
    assert_eq!(new.refinement_blocks, old.refinement_blocks + 2);
    assert!(parameter_count(&after.store) > parameter_count(&before.store));

    tch::manual_seed(7);
    let (height, width, masks) = (40, 52, 3);
    let options = (Kind::Float, Device::Cpu);
    let image = Tensor::rand([1, 3, height, width], options);
    let labels = Tensor::randint(masks, [1, 1, height, width], (Kind::Int64, Device::Cpu));
    let priors = Priors {
        quality: Tensor::randn([1, old.quality_dim], options),
        masks: labels
            .eq_tensor(&Tensor::arange(masks, (Kind::Int64, Device::Cpu)).view([1, masks, 1, 1]))
            .to_kind(Kind::Float),
        content: Tensor::randn([1, old.content_dim], options),
        degradation: Tensor::randn([1, old.degradation_dim], options),
    };
    let restore = |network: &clearair_model::ClearAirNet| {
        tch::no_grad(|| network.forward_checked(&image, &priors, false)).expect("forward")
    };
    let reference = restore(&before.network);
    let difference = |output: &Tensor| (output - &reference).abs().max().double_value(&[]);
    let unchanged = difference(&restore(&after.network));
    assert!(
        unchanged <= 1e-6,
        "the grown network differs by {unchanged}"
    );

    // The last new block is on the forward path: its feed-forward output at non-zero moves
    // the result.
    let last = format!(
        "refinement.{}.ffn.project_out.weight",
        new.refinement_blocks - 1
    );
    let mut variables = after.store.variables();
    let projection = variables
        .get_mut(&last)
        .expect("the new block's projection");
    assert_eq!(projection.abs().max().double_value(&[]), 0.0);
    tch::no_grad(|| {
        let _ = projection.fill_(0.05);
    });
    let moved = difference(&restore(&after.network));
    assert!(
        moved > 1e-3,
        "a live block moved the output by only {moved}"
    );
}

#[test]
fn bad_counts_and_weights_without_a_manifest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let committed = workspace().join("models/clearair-compact.safetensors");
    let out = dir.path().join("out.safetensors");
    for count in ["0", "-1", "two"] {
        let refused = grow(&out, &committed, count);
        assert_eq!(refused.status.code(), Some(2), "{count}: {refused:?}");
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(message.contains("whole number of blocks"), "{message}");
    }
    let bare = dir.path().join("bare.safetensors");
    std::fs::copy(&committed, &bare).unwrap();
    let refused = grow(&out, &bare, "1");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("bare.safetensors") && message.contains("no manifest"),
        "{message}"
    );
    assert!(!out.exists());
}
