//! AdamW written out over the store's named trainable tensors, so its moments can be saved
//! with a checkpoint and a resumed run continues exactly where it stopped (tch's built-in
//! optimiser keeps its state inside libtorch, out of reach), and the learning-rate schedule.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::path::Path;

use tch::{Kind, Tensor, nn};

use crate::error::{Result, TrainError};

/// AdamW hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// First-moment decay (paper: 0.9).
    pub beta1: f64,
    /// Second-moment decay (paper: 0.999).
    pub beta2: f64,
    /// Denominator floor.
    pub epsilon: f64,
    /// Decoupled weight decay (Restormer: 1e-4).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 1e-4,
        }
    }
}

/// One trainable tensor with its two moments.
#[derive(Debug)]
struct Slot {
    name: String,
    parameter: Tensor,
    first: Tensor,
    second: Tensor,
}

/// AdamW (Loshchilov & Hutter) over every trainable variable of a store, in name order.
#[derive(Debug)]
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    steps: u64,
}

impl AdamW {
    /// An optimiser for the trainable variables of `store` (running statistics and other
    /// non-trainable tensors are left alone).
    pub fn new(store: &nn::VarStore, config: AdamWConfig) -> Self {
        let mut named: Vec<(String, Tensor)> = store
            .variables()
            .into_iter()
            .filter(|(_, tensor)| tensor.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = named
            .into_iter()
            .map(|(name, parameter)| Slot {
                first: parameter.zeros_like(),
                second: parameter.zeros_like(),
                name,
                parameter,
            })
            .collect();
        Self {
            config,
            slots,
            steps: 0,
        }
    }

    /// Optimiser steps taken (including those before a resume).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for slot in &mut self.slots {
            let mut grad = slot.parameter.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm
    /// before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .slots
            .iter()
            .map(|slot| slot.parameter.grad())
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let squares: Vec<Tensor> = grads.iter().map(|g| g.square().sum(Kind::Float)).collect();
        let norm = Tensor::stack(&squares, 0)
            .sum(Kind::Float)
            .sqrt()
            .double_value(&[]);
        if norm.is_finite() && norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            tch::no_grad(|| {
                for mut grad in grads {
                    let _ = grad.g_mul_scalar_(scale);
                }
            });
        }
        norm
    }

    /// One AdamW update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.steps += 1;
        let AdamWConfig {
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } = self.config;
        let t = self.steps as i32;
        let first_correction = 1.0 - beta1.powi(t);
        let second_correction = 1.0 - beta2.powi(t);
        tch::no_grad(|| {
            for slot in &mut self.slots {
                let grad = slot.parameter.grad();
                if !grad.defined() {
                    continue;
                }
                let _ = slot.parameter.g_mul_scalar_(1.0 - lr * weight_decay);
                let _ = slot.first.g_mul_scalar_(beta1);
                let _ = slot.first.g_add_(&(&grad * (1.0 - beta1)));
                let _ = slot.second.g_mul_scalar_(beta2);
                let _ = slot.second.g_add_(&(grad.square() * (1.0 - beta2)));
                let denominator = (&slot.second / second_correction).sqrt() + epsilon;
                let update = &slot.first / &denominator * (lr / first_correction);
                let _ = slot.parameter.g_sub_(&update);
            }
        });
    }

    /// Writes both moments of every slot and the step count to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let steps = Tensor::from_slice(&[self.steps as i64]);
        let mut named: Vec<(String, Tensor)> = vec![("steps".to_owned(), steps)];
        for slot in &self.slots {
            named.push((format!("first.{}", slot.name), slot.first.shallow_clone()));
            named.push((format!("second.{}", slot.name), slot.second.shallow_clone()));
        }
        Tensor::write_safetensors(&named, path)?;
        Ok(())
    }

    /// Restores the state written by [`AdamW::save`] for the same network.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let fail = |reason: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let stored: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| fail(e.to_string()))?
            .into_iter()
            .collect();
        let steps = stored
            .get("steps")
            .ok_or_else(|| fail("no `steps` entry".into()))?;
        tch::no_grad(|| -> Result<()> {
            for slot in &mut self.slots {
                for (prefix, moment) in [("first", &mut slot.first), ("second", &mut slot.second)] {
                    let name = format!("{prefix}.{}", slot.name);
                    let value = stored
                        .get(&name)
                        .filter(|v| v.size() == moment.size())
                        .ok_or_else(|| fail(format!("`{name}` is missing or of another shape")))?;
                    moment.copy_(&value.to_device(moment.device()));
                }
            }
            Ok(())
        })?;
        self.steps = steps.int64_value(&[0]) as u64;
        Ok(())
    }
}

/// Linear warm-up to the peak, then cosine decay to a floor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearningRateSchedule {
    /// Learning rate after warm-up (paper: 2e-4).
    pub peak: f64,
    /// Learning rate at the end of training.
    pub floor: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// A learning-rate range test instead: the rate rises exponentially from the first to
    /// the second value over the run (Smith's test: the loss falls fastest, then diverges).
    pub range_test: Option<(f64, f64)>,
}

impl LearningRateSchedule {
    /// The learning rate at `step` (0-based) when training has progressed `progress` (0 to 1
    /// of its iterations or of its time budget, whichever is further).
    pub fn at(&self, step: u64, progress: f64) -> f64 {
        if let Some((from, to)) = self.range_test {
            return from * (to / from).powf(progress.clamp(0.0, 1.0));
        }
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let progress = progress.clamp(0.0, 1.0);
        self.floor + (self.peak - self.floor) * 0.5 * (1.0 + (PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;
    use tch::nn::OptimizerConfig;

    /// Minimises ‖w − target‖² on a few parameters with ours and with libtorch's AdamW; the
    /// trajectories must agree.
    #[test]
    fn matches_libtorch_adamw() {
        let target = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([2, 2]);
        let run = |ours: bool| -> Tensor {
            tch::manual_seed(0);
            let store = nn::VarStore::new(Device::Cpu);
            let w = store.root().randn("w", &[2, 2], 0.0, 1.0);
            let loss = |w: &Tensor| (w - &target).square().sum(Kind::Float);
            if ours {
                let mut adam = AdamW::new(&store, AdamWConfig::default());
                for _ in 0..20 {
                    adam.zero_grad();
                    loss(&w).backward();
                    adam.step(0.05);
                }
            } else {
                let mut adam = nn::AdamW {
                    beta1: 0.9,
                    beta2: 0.999,
                    wd: 1e-4,
                    eps: 1e-8,
                    amsgrad: false,
                }
                .build(&store, 0.05)
                .unwrap();
                for _ in 0..20 {
                    adam.backward_step(&loss(&w));
                }
            }
            w.detach()
        };
        let (ours, reference) = (run(true), run(false));
        assert!(
            ours.allclose(&reference, 1e-5, 1e-6, false),
            "{ours} vs {reference}"
        );
    }

    #[test]
    fn clipping_caps_the_global_norm() {
        let store = nn::VarStore::new(Device::Cpu);
        let w = store.root().zeros("w", &[3]);
        (&w * Tensor::from_slice(&[3.0f32, 4.0, 0.0]))
            .sum(Kind::Float)
            .backward();
        let mut adam = AdamW::new(&store, AdamWConfig::default());
        assert!((adam.clip_grad_norm(1.0) - 5.0).abs() < 1e-6);
        let clipped = w.grad().norm().double_value(&[]);
        assert!((clipped - 1.0).abs() < 1e-4, "{clipped}");
    }

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let range = LearningRateSchedule {
            peak: 0.0,
            floor: 0.0,
            warmup_steps: 0,
            range_test: Some((1e-5, 1e-1)),
        };
        assert!((range.at(0, 0.0) - 1e-5).abs() < 1e-12);
        assert!((range.at(50, 0.5) - 1e-3).abs() < 1e-9);
        assert!((range.at(100, 1.0) - 1e-1).abs() < 1e-9);
        let schedule = LearningRateSchedule {
            peak: 2e-4,
            floor: 1e-6,
            warmup_steps: 10,
            range_test: None,
        };
        assert!((schedule.at(0, 0.0) - 2e-5).abs() < 1e-12);
        assert!((schedule.at(9, 0.01) - 2e-4).abs() < 1e-12);
        assert!((schedule.at(10, 0.0) - 2e-4).abs() < 1e-12);
        assert!((schedule.at(500, 0.5) - (1e-6 + 0.5 * (2e-4 - 1e-6))).abs() < 1e-12);
        assert!((schedule.at(1000, 1.0) - 1e-6).abs() < 1e-12);
    }
}
