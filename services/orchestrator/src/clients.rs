//! Clients of the four model services: lazily connected, traced, with the mesh's limits.

use clearair_proto::v1::{
    degradation_service_client::DegradationServiceClient,
    quality_service_client::QualityServiceClient,
    restoration_service_client::RestorationServiceClient,
    segmentation_service_client::SegmentationServiceClient,
};
use clearair_runtime::{
    RuntimeError,
    client::{TracedChannel, traced_channel},
    configure_client,
};

use crate::config::OrchestratorConfig;

/// Clients of the three prior services.
#[derive(Clone, Debug)]
pub(crate) struct PriorClients {
    pub(crate) quality: QualityServiceClient<TracedChannel>,
    pub(crate) segmentation: SegmentationServiceClient<TracedChannel>,
    pub(crate) degradation: DegradationServiceClient<TracedChannel>,
}

/// Clients of every peer.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub(crate) priors: PriorClients,
    pub(crate) restoration: RestorationServiceClient<TracedChannel>,
}

impl Clients {
    /// Channels to every peer; nothing connects until the first call.
    pub(crate) fn new(config: &OrchestratorConfig) -> Result<Self, RuntimeError> {
        let limit = config.server.max_message_bytes;
        Ok(Self {
            priors: PriorClients {
                quality: configure_client!(
                    QualityServiceClient::new(traced_channel(&config.quality)?),
                    limit
                ),
                segmentation: configure_client!(
                    SegmentationServiceClient::new(traced_channel(&config.segmentation)?),
                    limit
                ),
                degradation: configure_client!(
                    DegradationServiceClient::new(traced_channel(&config.degradation)?),
                    limit
                ),
            },
            restoration: configure_client!(
                RestorationServiceClient::new(traced_channel(&config.restoration)?),
                limit
            ),
        })
    }
}
