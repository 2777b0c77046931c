//! gRPC statuses decided where an error happens: the caller's faults are INVALID_ARGUMENT
//! with the message alone; ours are INTERNAL, and the whole source chain goes to the log
//! (the caller gets the top-level message, not our internals).

use tonic::Status;

/// `error` and its sources, outermost first, joined by ": ".
pub fn source_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// INVALID_ARGUMENT for a request the caller must change.
pub fn client_fault(error: &dyn std::error::Error) -> Status {
    Status::invalid_argument(error.to_string())
}

/// INTERNAL for a failure of ours, logged with its whole source chain.
pub fn server_fault(error: &dyn std::error::Error) -> Status {
    tracing::error!(error = %source_chain(error), "internal error");
    Status::internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("restoring")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_and_the_status_only_the_top() {
        let error = Outer(std::io::Error::other("no space left"));
        assert_eq!(source_chain(&error), "restoring: no space left");
        let status = server_fault(&error);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "restoring");
        assert_eq!(client_fault(&error).code(), Code::InvalidArgument);
    }
}
