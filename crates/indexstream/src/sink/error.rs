//! What a sink reports when it fails, and whether trying again can help.

use std::fmt;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether another attempt of the same write or flush can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkRetry {
    /// A passing condition (a timeout, a connection refused, a full queue): the consumer tries
    /// the document again, up to its attempts.
    MayHelp,
    /// The destination refused this input and will refuse it again (too large, invalid): the
    /// document goes to the dead-letter destination at once.
    WillNotHelp,
    /// The destination refuses every document, whatever it holds (no permission, a write
    /// block, a missing target, a request too large): the consumer stops, naming the cause,
    /// rather than send the whole stream to the dead letters.
    Stop,
}

/// A sink's failure: the cause, and whether a retry can help.
#[derive(Debug)]
pub struct SinkError {
    retry: SinkRetry,
    source: BoxError,
}

impl SinkError {
    /// A failure that another attempt may not repeat.
    pub fn transient(cause: impl Into<BoxError>) -> Self {
        SinkError {
            retry: SinkRetry::MayHelp,
            source: cause.into(),
        }
    }

    /// A failure that every attempt will repeat.
    pub fn permanent(cause: impl Into<BoxError>) -> Self {
        SinkError {
            retry: SinkRetry::WillNotHelp,
            source: cause.into(),
        }
    }

    /// A failure of the destination as a whole: the consumer stops (see [`SinkRetry::Stop`]).
    pub fn stop(cause: impl Into<BoxError>) -> Self {
        SinkError {
            retry: SinkRetry::Stop,
            source: cause.into(),
        }
    }

    /// Whether another attempt can help, as a [`SinkRetry`].
    pub fn retry(&self) -> SinkRetry {
        self.retry
    }

    /// Whether another attempt can help.
    pub fn is_retriable(&self) -> bool {
        self.retry == SinkRetry::MayHelp
    }

    /// The kind of the I/O error behind it, if an I/O error is.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.source
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// I/O errors that say the input itself is at fault are permanent; the rest (a full disk, a
/// broken pipe, an interrupted call) may pass.
impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            InvalidInput | InvalidData | Unsupported => SinkError::permanent(e),
            _ => SinkError::transient(e),
        }
    }
}

impl From<tokio::task::JoinError> for SinkError {
    fn from(e: tokio::task::JoinError) -> Self {
        SinkError::transient(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified_and_keep_their_kind() {
        let e = SinkError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, "bad"));
        assert!(!e.is_retriable());
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::InvalidData));
        let e = SinkError::from(std::io::Error::other("disk away"));
        assert!(e.is_retriable());
        assert_eq!(e.to_string(), "disk away");
        assert_eq!(
            SinkError::permanent("too large").retry(),
            SinkRetry::WillNotHelp
        );
    }
}
