//! `clearair.v1.RestorationService/Restore` and `RestoreTiles`: validate the image and every
//! prior, then queue the work for the restorer's thread.

use std::{pin::Pin, sync::Arc};

use clearair_backends::restoration::neutral;
use clearair_imaging::{DecodeLimits, PackedMasks, Rgb8Image};
use clearair_model::{GateView, RefinerGate};
use clearair_proto::v1::{
    RestoreRequest, RestoreResponse, RestoreTilesRequest, RestoreTilesResponse, TileProgress,
    restoration_service_server::RestorationService, restore_tiles_response::Event,
};
use clearair_runtime::{deadline::Deadline, metrics::ServiceMetrics, model::ModelSlot};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use crate::{
    RestorationConfig,
    config::BackendNames,
    error::RestorationError,
    restorer::{Restored, Restorer, RestorerInput, TileProgress as HearTile},
};

/// The reply stream of `RestoreTiles`.
type TileEvents = Pin<Box<dyn Stream<Item = Result<RestoreTilesResponse, Status>> + Send>>;

/// Backend name under which orchestrators before 0.2 sent their own neutral fallback priors;
/// still accepted. Today an orchestrator leaves a failed prior out and the restorer fills in
/// its own neutral value.
const NEUTRAL_BACKEND: &str = "neutral";

/// Serves Restore with the loaded network.
pub(crate) struct RestorationHandler {
    slot: ModelSlot<Restorer>,
    metrics: ServiceMetrics,
    limits: DecodeLimits,
    backends: BackendNames,
}

impl RestorationHandler {
    pub(crate) fn new(
        slot: ModelSlot<Restorer>,
        metrics: ServiceMetrics,
        config: &RestorationConfig,
    ) -> Self {
        Self {
            slot,
            metrics,
            limits: DecodeLimits {
                max_pixels: config.max_pixels,
                ..DecodeLimits::default()
            },
            backends: config.backends.clone(),
        }
    }
}

/// Checks that a vector prior has `width` finite values.
fn check_vector(name: &str, values: &[f32], width: i64) -> Result<(), RestorationError> {
    if values.len() as i64 != width {
        return Err(RestorationError::Prior(format!(
            "`{name}` has {} values; this restorer expects {width}",
            values.len()
        )));
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(RestorationError::Prior(format!(
            "`{name}[{index}]` is {}; every value must be finite",
            values[index]
        )));
    }
    Ok(())
}

/// The kind probabilities of a degradation prior's `field` (`probabilities` or
/// `gate_probabilities`), in [`clearair_model::DegradationKind::ALL`] order, each checked to
/// be in [0, 1]; a kind the prior does not name reads as NaN, which a refiner gate takes as
/// no evidence. None when the prior names no kind.
fn kind_probabilities(
    field: &str,
    sent: &[clearair_proto::v1::DegradationProbability],
) -> Result<Option<Vec<f32>>, RestorationError> {
    if sent.is_empty() {
        return Ok(None);
    }
    let mut probabilities = vec![f32::NAN; clearair_model::DegradationKind::ALL.len()];
    for (index, entry) in sent.iter().enumerate() {
        // The wire's kinds are the encoder's order counted from 1 (0 is unspecified).
        let slot = usize::try_from(entry.kind)
            .ok()
            .and_then(|kind| kind.checked_sub(1))
            .filter(|&slot| slot < probabilities.len())
            .ok_or_else(|| {
                RestorationError::Prior(format!(
                    "`degradation.{field}[{index}].kind` is {}, not a degradation kind",
                    entry.kind
                ))
            })?;
        if !(0.0..=1.0).contains(&entry.probability) {
            return Err(RestorationError::Prior(format!(
                "`degradation.{field}[{index}].probability` is {}; it must be in [0, 1]",
                entry.probability
            )));
        }
        probabilities[slot] = entry.probability;
    }
    Ok(Some(probabilities))
}

/// The kind probabilities the refiner's `gate` reads from `prior`, after checking both sets
/// it carries. A gate on the served view reads `probabilities`; one on another view reads
/// `gate_probabilities` when the prior was read in that view, and none (the gate stays shut,
/// as with no prior) when the degradation service sent no second reading. A second reading
/// in another view than the gate's is refused: the gate's thresholds mean nothing there.
fn gate_probabilities(
    prior: &clearair_proto::v1::DegradationPrior,
    gate: Option<RefinerGate>,
) -> Result<Option<Vec<f32>>, RestorationError> {
    let served = kind_probabilities("probabilities", &prior.probabilities)?;
    let second = kind_probabilities("gate_probabilities", &prior.gate_probabilities)?;
    let sent_view = match (prior.gate_view.as_str(), &second) {
        ("", None) => None,
        ("", Some(_)) => {
            return Err(RestorationError::Prior(
                "`degradation.gate_probabilities` are sent without `degradation.gate_view`"
                    .to_owned(),
            ));
        }
        (name, _) => Some(
            GateView::from_name(name)
                .filter(|view| *view != GateView::Served)
                .ok_or_else(|| {
                    RestorationError::Prior(format!(
                        "`degradation.gate_view` is {name:?}, not \"centre\" or \"tiles\""
                    ))
                })?,
        ),
    };
    let Some(gate) = gate else {
        return Ok(served);
    };
    match (gate.view, sent_view) {
        (GateView::Served, _) => Ok(served),
        (wanted, Some(sent)) if sent == wanted => Ok(second),
        (wanted, Some(sent)) => Err(RestorationError::Prior(format!(
            "`degradation.gate_view` is \"{}\", but this restorer's refiner gate reads \"{}\": \
             set the degradation service's gate_view to \"{}\"",
            sent.as_str(),
            wanted.as_str(),
            wanted.as_str()
        ))),
        (wanted, None) => {
            if !MISSING_GATE_VIEW_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    gate_view = wanted.as_str(),
                    "the degradation prior carries no gate reading; the refiner's gate stays \
                     shut until the degradation service's gate_view is set to its view"
                );
            }
            Ok(None)
        }
    }
}

/// Whether the missing gate reading was logged already (once per process is enough).
static MISSING_GATE_VIEW_WARNED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Checks that a prior comes from the backend the weights were trained with (or is neutral).
fn check_backend(name: &str, sent: &str, expected: &str) -> Result<(), RestorationError> {
    if sent == expected || sent == NEUTRAL_BACKEND {
        return Ok(());
    }
    Err(RestorationError::Prior(format!(
        "`{name}` comes from backend `{sent}`, but this restorer was trained with `{expected}`"
    )))
}

/// Validates a request completely before any model work.
fn validate(
    request: RestoreRequest,
    limits: &DecodeLimits,
    backends: &BackendNames,
    restorer: &Restorer,
) -> Result<RestorerInput, RestorationError> {
    let network = restorer.network_config();
    // Every prior service down (the orchestrator leaves out each prior that fell back) or
    // an upload sent alone: where the fallback stage, if there is one, runs.
    let no_prior =
        request.quality.is_none() && request.masks.is_none() && request.degradation.is_none();
    let image = request.image.ok_or(RestorationError::Missing("image"))?;
    let image = Rgb8Image::from_proto_owned(image, limits)?;
    // An absent prior is steered by the restorer's own neutral value (what training's prior
    // dropout substitutes), so a request with the image alone is served.
    let quality = match request.quality {
        Some(quality) => {
            check_backend("quality", &quality.backend, &backends.quality)?;
            check_vector("quality.features", &quality.features, network.quality_dim)?;
            quality.features
        }
        None => neutral::vector(network.quality_dim as usize),
    };
    let masks = match request.masks {
        Some(masks) => {
            check_backend("masks", &masks.backend, &backends.segmentation)?;
            PackedMasks::from_proto(&masks, image.width(), image.height())
                .map_err(|e| RestorationError::Prior(e.to_string()))?
        }
        None => neutral::masks(image.width(), image.height()),
    };
    let (content, degradation, probabilities) = match request.degradation {
        Some(prior) => {
            check_backend("degradation", &prior.backend, &backends.degradation)?;
            check_vector("degradation.content", &prior.content, network.content_dim)?;
            check_vector(
                "degradation.degradation",
                &prior.degradation,
                network.degradation_dim,
            )?;
            let probabilities = gate_probabilities(&prior, restorer.refiner_gate())?;
            (prior.content, prior.degradation, probabilities)
        }
        None => (
            neutral::vector(network.content_dim as usize),
            neutral::vector(network.degradation_dim as usize),
            None,
        ),
    };
    Ok(RestorerInput {
        image,
        quality,
        masks,
        content,
        degradation,
        gate_probabilities: probabilities,
        no_prior,
    })
}

/// A validated request, ready for the restorer's thread.
struct Prepared {
    restorer: Arc<Restorer>,
    input: RestorerInput,
    deadline: Option<Deadline>,
}

impl RestorationHandler {
    /// Validates the request completely; every refusal answers the call itself.
    fn prepare(&self, request: Request<RestoreRequest>) -> Result<Prepared, Status> {
        let deadline = Deadline::of(&request);
        let restorer: Arc<Restorer> = self.slot.get()?;
        let input = validate(
            request.into_inner(),
            &self.limits,
            &self.backends,
            &restorer,
        )?;
        tracing::Span::current()
            .record("width", input.image.width())
            .record("height", input.image.height());
        if deadline.is_some_and(|d| d.expired()) {
            return Err(Deadline::exceeded("restoration"));
        }
        Ok(Prepared {
            restorer,
            input,
            deadline,
        })
    }
}

/// Restores a prepared request on the restorer's thread; `progress` hears each tile.
async fn restore(
    prepared: Prepared,
    metrics: &ServiceMetrics,
    progress: Option<HearTile>,
) -> Result<RestoreResponse, Status> {
    let Prepared {
        restorer,
        input,
        deadline,
    } = prepared;
    let Restored {
        image,
        tiles,
        model_time,
        queued,
    } = restorer.restore(input, deadline, progress).await?;
    metrics.observe_model(model_time, 1);
    tracing::Span::current()
        .record("tiles", tiles)
        .record("queued_ms", queued.as_millis() as u64);
    Ok(RestoreResponse {
        image: Some(image.to_proto()),
        model_milliseconds: model_time.as_secs_f64() * 1e3,
        tiles,
    })
}

#[tonic::async_trait]
impl RestorationService for RestorationHandler {
    #[tracing::instrument(skip_all, fields(width, height, tiles, queued_ms))]
    async fn restore(
        &self,
        request: Request<RestoreRequest>,
    ) -> Result<Response<RestoreResponse>, Status> {
        let prepared = self.prepare(request)?;
        restore(prepared, &self.metrics, None)
            .await
            .map(Response::new)
    }

    type RestoreTilesStream = TileEvents;

    #[tracing::instrument(skip_all, fields(width, height, tiles, queued_ms))]
    async fn restore_tiles(
        &self,
        request: Request<RestoreTilesRequest>,
    ) -> Result<Response<Self::RestoreTilesStream>, Status> {
        let (metadata, extensions, message) = request.into_parts();
        let inner = message
            .restore
            .ok_or(RestorationError::Missing("restore"))?;
        let prepared = self.prepare(Request::from_parts(metadata, extensions, inner))?;
        // The restorer's thread never waits for a slow reader: events go in with `try_send`,
        // and 256 of them hold every tile of a 40-megapixel image in 512-pixel tiles (192).
        let (sender, events) = mpsc::channel(256);
        let tiles = sender.clone();
        let progress: HearTile = Box::new(move |done, total| {
            let event = Event::Progress(TileProgress { done, total });
            let _ = tiles.try_send(Ok(RestoreTilesResponse { event: Some(event) }));
        });
        let metrics = self.metrics.clone();
        let work = async move {
            tokio::select! {
                answer = restore(prepared, &metrics, Some(progress)) => {
                    let message = answer.map(|result| RestoreTilesResponse {
                        event: Some(Event::Result(result)),
                    });
                    let _ = sender.send(message).await;
                }
                // The caller stopped reading: dropping the work stops the restorer between
                // tiles.
                () = sender.closed() => {}
            }
        };
        tokio::spawn(tracing::Instrument::instrument(
            work,
            tracing::Span::current(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(events))))
    }
}

#[cfg(test)]
mod tests {
    use clearair_model::DegradationKind;
    use clearair_proto::v1::{DegradationPrior, DegradationProbability};

    use super::*;

    fn reading(blur: f32) -> Vec<DegradationProbability> {
        vec![DegradationProbability {
            kind: DegradationKind::Blur.index() as i32 + 1,
            probability: blur,
        }]
    }

    fn blur_of(probabilities: Option<Vec<f32>>) -> Option<f32> {
        probabilities.map(|p| p[DegradationKind::Blur.index()])
    }

    #[test]
    fn the_gate_reads_the_probabilities_of_its_own_view() {
        let prior = DegradationPrior {
            probabilities: reading(0.2),
            gate_probabilities: reading(0.8),
            gate_view: "tiles".to_owned(),
            ..DegradationPrior::default()
        };
        let gate = |view| {
            Some(RefinerGate {
                view,
                ..RefinerGate::parse("blur:0.3:0.6").unwrap()
            })
        };
        let read =
            |prior: &DegradationPrior, gate| blur_of(gate_probabilities(prior, gate).unwrap());
        // A gate on the served view, or no gate, reads the served probabilities.
        assert_eq!(read(&prior, gate(GateView::Served)), Some(0.2));
        assert_eq!(read(&prior, None), Some(0.2));
        // A gate on the tiles reads the second reading.
        assert_eq!(read(&prior, gate(GateView::Tiles)), Some(0.8));
        // Without a second reading it stays shut, as with no prior at all.
        let plain = DegradationPrior {
            probabilities: reading(0.9),
            ..DegradationPrior::default()
        };
        assert_eq!(read(&plain, gate(GateView::Tiles)), None);
        // A reading in another view than the gate's is refused, naming both.
        let error = gate_probabilities(&prior, gate(GateView::Centre))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("degradation.gate_view")
                && error.contains("tiles")
                && error.contains("centre"),
            "{error}"
        );
    }
}
