//! `deploy/scripts/average_weights.py`, which made the committed restorer from two cycle ends:
//! the output is the element-wise mean of its inputs in their dtype, and inputs of another
//! network are refused with a message naming the file.

use std::path::Path;
use std::process::{Command, Output};

use clearair_e2e::{python, workspace};
use tch::{Kind, Tensor};

fn average(out: &Path, inputs: &[&Path]) -> Output {
    Command::new(python())
        .arg(workspace().join("deploy/scripts/average_weights.py"))
        .arg(out)
        .args(inputs)
        .output()
        .expect("the script runs")
}

#[test]
fn the_average_is_the_element_wise_mean_and_other_networks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c, out) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
        dir.path().join("c.safetensors"),
        dir.path().join("out.safetensors"),
    );
    let weight_a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
    let weight_b = Tensor::from_slice(&[3.0f32, 2.0, -3.0, 0.5]).view([2, 2]);
    let steps = Tensor::from_slice(&[7i64]);
    Tensor::write_safetensors(&[("w", &weight_a), ("steps", &steps)], &a).unwrap();
    Tensor::write_safetensors(&[("w", &weight_b), ("steps", &steps)], &b).unwrap();

    let run = average(&out, &[&a, &b]);
    assert!(run.status.success(), "{run:?}");
    let averaged: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    let expected = Tensor::from_slice(&[2.0f32, 2.0, 0.0, 2.25]).view([2, 2]);
    assert_eq!(averaged["w"].kind(), Kind::Float);
    assert!(averaged["w"].allclose(&expected, 0.0, 1e-7, false));
    assert_eq!(averaged["steps"], steps);

    // Another shape is another network.
    let other = Tensor::zeros([3, 2], (Kind::Float, tch::Device::Cpu));
    Tensor::write_safetensors(&[("w", &other), ("steps", &steps)], &c).unwrap();
    let refused = average(&dir.path().join("bad.safetensors"), &[&a, &c]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("c.safetensors") && message.contains("w is (3, 2)"),
        "{message}"
    );
    assert!(!dir.path().join("bad.safetensors").exists());
}
