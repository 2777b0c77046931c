//! The three priors of one image: fetched in parallel under the request's deadline, checked,
//! and left out where a prior fails and its policy says `fallback` (the restorer then uses
//! its own neutral value).

use std::time::{Duration, Instant};

use clearair_imaging::{PackedMasks, Rgb8Image};
use clearair_proto::contract::EMBEDDING_WIDTH;
use clearair_proto::v1::{
    AssessRequest, DegradationPrior, EmbedRequest, PriorKind, QualityPrior, RgbImage,
    SegmentRequest, SemanticMasks,
};
use clearair_runtime::deadline::Deadline;
use tonic::{Code, Request, Status};

use crate::{
    clients::PriorClients,
    config::{FailurePolicy, FanOut, OrchestratorConfig},
    error::OrchestratorError,
};

/// The assembled priors of one image. A prior that failed under the `fallback` policy is
/// absent: the restorer fills in its own neutral value, so the orchestrator needs to know
/// nothing of the restorer's widths.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PriorSet {
    pub(crate) quality: Option<QualityPrior>,
    pub(crate) masks: Option<SemanticMasks>,
    pub(crate) degradation: Option<DegradationPrior>,
    /// Priors that fell back (absent above).
    pub(crate) fallbacks: Vec<PriorKind>,
}

impl PriorSet {
    /// Approximate memory held, for the cache's byte budget.
    pub(crate) fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.quality.as_ref().map_or(0, |q| q.features.len() * 4)
            + self
                .masks
                .as_ref()
                .map_or(0, |m| m.bits.len() + m.scores.len() * 4)
            + self.degradation.as_ref().map_or(0, |d| {
                (d.content.len() + d.degradation.len()) * 4
                    + (d.probabilities.len() + d.gate_probabilities.len()) * 8
                    + d.gate_view.len()
            })
    }
}

/// Per-prior wall times, in the order quality, segmentation, degradation.
pub(crate) type PriorTimes = [(PriorKind, Duration); 3];

/// Calls the three prior services (in parallel unless configured otherwise) and applies the
/// failure policies.
pub(crate) async fn gather(
    clients: &PriorClients,
    config: &OrchestratorConfig,
    image: &Rgb8Image,
    deadline: Option<Deadline>,
) -> Result<(PriorSet, PriorTimes), OrchestratorError> {
    let wire = image.to_proto();
    let quality = timed(call_quality(clients, wire.clone(), deadline));
    let segmentation = timed(call_segmentation(
        clients,
        wire.clone(),
        config.max_masks,
        deadline,
    ));
    let degradation = timed(call_degradation(clients, wire, deadline));
    let ((q, q_time), (s, s_time), (d, d_time)) = match config.fan_out {
        FanOut::Parallel => tokio::join!(quality, segmentation, degradation),
        FanOut::Sequential => (quality.await, segmentation.await, degradation.await),
    };
    if deadline.is_some_and(|d| d.expired()) {
        return Err(OrchestratorError::DeadlineExceeded("the priors"));
    }
    let mut fallbacks = Vec::new();
    let (width, height) = (image.width(), image.height());
    let quality = resolve(PriorKind::Quality, config.policy.quality, q, &mut fallbacks)?;
    let masks = resolve(
        PriorKind::Segmentation,
        config.policy.segmentation,
        s.and_then(|m| check_masks(m, width, height)),
        &mut fallbacks,
    )?;
    let degradation = resolve(
        PriorKind::Degradation,
        config.policy.degradation,
        d,
        &mut fallbacks,
    )?;
    let times = [
        (PriorKind::Quality, q_time),
        (PriorKind::Segmentation, s_time),
        (PriorKind::Degradation, d_time),
    ];
    Ok((
        PriorSet {
            quality,
            masks,
            degradation,
            fallbacks,
        },
        times,
    ))
}

async fn timed<T>(call: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let value = call.await;
    (value, started.elapsed())
}

fn request<T>(message: T, deadline: Option<Deadline>) -> Request<T> {
    let mut request = Request::new(message);
    Deadline::propagate(deadline, &mut request);
    request
}

async fn call_quality(
    clients: &PriorClients,
    image: RgbImage,
    deadline: Option<Deadline>,
) -> Result<QualityPrior, Status> {
    let response = clients
        .quality
        .clone()
        .assess(request(AssessRequest { image: Some(image) }, deadline))
        .await?
        .into_inner();
    let quality = response
        .quality
        .ok_or_else(|| Status::internal("quality service returned no `quality`"))?;
    if quality.features.is_empty() || quality.features.iter().any(|v| !v.is_finite()) {
        return Err(Status::internal(
            "quality service returned empty or non-finite features",
        ));
    }
    Ok(quality)
}

async fn call_segmentation(
    clients: &PriorClients,
    image: RgbImage,
    max_masks: u32,
    deadline: Option<Deadline>,
) -> Result<SemanticMasks, Status> {
    let message = SegmentRequest {
        image: Some(image),
        max_masks,
    };
    clients
        .segmentation
        .clone()
        .segment(request(message, deadline))
        .await?
        .into_inner()
        .masks
        .ok_or_else(|| Status::internal("segmentation service returned no `masks`"))
}

fn check_masks(masks: SemanticMasks, width: u32, height: u32) -> Result<SemanticMasks, Status> {
    match PackedMasks::from_proto(&masks, width, height) {
        Ok(_) => Ok(masks),
        Err(error) => Err(Status::internal(format!(
            "segmentation service returned unusable masks: {error}"
        ))),
    }
}

async fn call_degradation(
    clients: &PriorClients,
    image: RgbImage,
    deadline: Option<Deadline>,
) -> Result<DegradationPrior, Status> {
    let prior = clients
        .degradation
        .clone()
        .embed(request(EmbedRequest { image: Some(image) }, deadline))
        .await?
        .into_inner()
        .degradation
        .ok_or_else(|| Status::internal("degradation service returned no `degradation`"))?;
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if prior.content.len() != EMBEDDING_WIDTH
        || prior.degradation.len() != EMBEDDING_WIDTH
        || !finite(&prior.content)
        || !finite(&prior.degradation)
    {
        return Err(Status::internal(format!(
            "degradation service returned embeddings of {} and {} values (want {EMBEDDING_WIDTH} finite each)",
            prior.content.len(),
            prior.degradation.len()
        )));
    }
    Ok(prior)
}

/// Applies a prior's failure policy to its call's outcome: the prior, or nothing when it
/// falls back (the restorer then uses its neutral value).
fn resolve<T>(
    kind: PriorKind,
    policy: FailurePolicy,
    outcome: Result<T, Status>,
    fallbacks: &mut Vec<PriorKind>,
) -> Result<Option<T>, OrchestratorError> {
    match (outcome, policy) {
        (Ok(value), _) => Ok(Some(value)),
        (Err(status), FailurePolicy::Fallback) => {
            tracing::warn!(
                prior = kind.as_str_name(),
                code = ?status.code(),
                message = status.message(),
                "prior failed; the restorer will use its neutral value"
            );
            clearair_runtime::metrics::global().record_fallback(prior_name(kind));
            fallbacks.push(kind);
            Ok(None)
        }
        (Err(status), FailurePolicy::Fail) => Err(OrchestratorError::Prior { kind, status }),
    }
}

/// Lower-case name of a prior, as used in logs, metrics and messages.
pub(crate) fn prior_name(kind: PriorKind) -> &'static str {
    match kind {
        PriorKind::Quality => "quality",
        PriorKind::Segmentation => "segmentation",
        PriorKind::Degradation => "degradation",
        PriorKind::Unspecified => "unspecified",
    }
}

/// Whether a prior's failure status means the image, not the service, is at fault.
pub(crate) fn is_image_problem(status: &Status) -> bool {
    status.code() == Code::InvalidArgument
}
