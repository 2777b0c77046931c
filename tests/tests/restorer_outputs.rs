//! The restorer's fp32 outputs do not change when its code is made faster: the committed
//! weights, on a fixed photo crop with its recorded priors, give the recorded output within
//! 1e-4 per value (`tests/fixtures/restorer-outputs.safetensors`).
//!
//! The fixture pins the weights too (their BLAKE3 hash): when new weights are promoted, write
//! it again from the unchanged code with `CLEARAIR_WRITE_RESTORER_FIXTURE=1 cargo test -p
//! clearair-e2e --test restorer_outputs -- --exact fp32_outputs_match_the_recorded_ones`, in the
//! same commit as the weights (the filter keeps the bf16 test from reading the fixture while it
//! is being written).

use std::path::PathBuf;

use clearair_backends::degradation::EncoderView;
use clearair_e2e::workspace;
use clearair_model::Priors;
use clearair_train::{
    mesh::MeshRestorer,
    networks::{load_encoder, load_restorer},
    photos::{image_to_tensor, read_photo},
    priors::{CpuPriorBackends, stack_quality},
};
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-4;

fn fixture_path() -> PathBuf {
    workspace().join("tests/fixtures/restorer-outputs.safetensors")
}

fn weights() -> PathBuf {
    workspace().join("models/clearair-compact.safetensors")
}

fn weights_hash() -> Tensor {
    let bytes = std::fs::read(weights()).expect("committed weights");
    let hash = blake3::hash(&bytes);
    Tensor::from_slice(hash.as_bytes())
}

/// A 70×58 crop (an odd size: the network pads it to multiples of 8) of a sample photo and
/// the priors the mesh computes for it.
fn write_fixture() {
    let encoder = load_encoder(
        &workspace().join("models/degradation-encoder.safetensors"),
        Device::Cpu,
    )
    .expect("encoder");
    let restorer = load_restorer(&weights(), Device::Cpu).expect("restorer");
    let backends = CpuPriorBackends::load(&workspace().join("data/brisque/brisque_svr.json"))
        .expect("BRISQUE");
    let photo = read_photo(&workspace().join("tests/fixtures/samples/noisy-coffee.png"))
        .expect("sample photo")
        .crop(90, 100, 70, 58)
        .expect("crop");
    let mesh = MeshRestorer {
        restorer: &restorer.network,
        restorer_ensemble: 1,
        refiner: None,
        refiner_gate: None,
        fallback_refiner: None,
        fallback_gate: None,
        encoder: &encoder.network,
        view: EncoderView::Whole,
        priors: &backends,
        device: Device::Cpu,
        precision: clearair_backends::Precision::Fp32,
    };
    let cpu = backends.compute(&photo).expect("priors");
    let (content, degradation, _) = mesh.embed(&photo).expect("embeddings");
    let masks = Tensor::from_slice(&cpu.masks.to_planar_f32()).view([
        1,
        i64::from(cpu.masks.count()),
        58,
        70,
    ]);
    let image = image_to_tensor(&photo).unsqueeze(0);
    let priors = Priors {
        quality: stack_quality(std::slice::from_ref(&cpu.quality), Device::Cpu),
        masks,
        content,
        degradation,
    };
    let output =
        tch::no_grad(|| restorer.network.forward_checked(&image, &priors, false)).expect("forward");
    Tensor::write_safetensors(
        &[
            ("image", &image),
            ("quality", &priors.quality),
            ("masks", &priors.masks.to_kind(Kind::Uint8)),
            ("content", &priors.content),
            ("degradation", &priors.degradation),
            ("output", &output),
            ("weights_blake3", &weights_hash()),
        ],
        fixture_path(),
    )
    .expect("fixture written");
}

#[test]
fn fp32_outputs_match_the_recorded_ones() {
    if std::env::var_os("CLEARAIR_WRITE_RESTORER_FIXTURE").is_some() {
        write_fixture();
    }
    let recorded: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(fixture_path())
            .expect("tests/fixtures/restorer-outputs.safetensors")
            .into_iter()
            .collect();
    assert!(
        recorded["weights_blake3"].equal(&weights_hash()),
        "models/clearair-compact.safetensors is not the one the fixture was recorded with: \
         record it again (see this file's header) in the commit that promotes the weights"
    );
    let restorer = load_restorer(&weights(), Device::Cpu).expect("restorer");
    let priors = Priors {
        quality: recorded["quality"].shallow_clone(),
        masks: recorded["masks"].to_kind(Kind::Float),
        content: recorded["content"].shallow_clone(),
        degradation: recorded["degradation"].shallow_clone(),
    };
    let output = tch::no_grad(|| {
        restorer
            .network
            .forward_checked(&recorded["image"], &priors, false)
    })
    .expect("forward");
    assert_eq!(output.size(), recorded["output"].size());
    let difference = (&output - &recorded["output"])
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        difference <= TOLERANCE,
        "the restorer's output moved by {difference:e} (allowed {TOLERANCE:e})"
    );
    // Not vacuous: the network changes its input substantially.
    let change = (&output - &recorded["image"])
        .abs()
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(change > 1e-3, "mean change {change}");
}

#[test]
fn bf16_outputs_stay_close_to_the_fp32_ones() {
    let recorded: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(fixture_path())
            .expect("tests/fixtures/restorer-outputs.safetensors")
            .into_iter()
            .collect();
    let mut restorer = load_restorer(&weights(), Device::Cpu).expect("restorer");
    clearair_backends::Precision::Bf16.convert(&mut restorer.store);
    let priors = Priors {
        quality: recorded["quality"].shallow_clone(),
        masks: recorded["masks"].to_kind(Kind::Float),
        content: recorded["content"].shallow_clone(),
        degradation: recorded["degradation"].shallow_clone(),
    };
    let output = clearair_backends::restoration::forward_in(
        clearair_backends::Precision::Bf16,
        &restorer.network,
        &recorded["image"],
        &priors,
    )
    .expect("bf16 forward");
    assert_eq!(output.kind(), Kind::Float, "the output comes back in fp32");
    let difference = (&output - &recorded["output"]).abs();
    let (largest, mean) = (
        difference.max().double_value(&[]),
        difference.mean(Kind::Float).double_value(&[]),
    );
    // bfloat16 keeps 8 bits of mantissa: about 1/256 relative; clearair eval measures what
    // that costs in dB (README, speed section).
    assert!(
        mean < 4e-3 && largest < 0.1,
        "mean {mean:e}, largest {largest:e}"
    );
    assert!(largest > 0.0, "the pass really ran in bf16");
}
