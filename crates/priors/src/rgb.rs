//! Validation of the RGB8 input shared by every backend.

use crate::PriorError;

/// Checks that `rgb` holds exactly `width * height` interleaved RGB8 pixels, `width, height > 0`.
pub(crate) fn validate_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<(), PriorError> {
    let expected = width
        .checked_mul(height)
        .and_then(|pixels| pixels.checked_mul(3))
        .filter(|&bytes| bytes > 0)
        .ok_or(PriorError::BadDimensions { width, height })?;
    if rgb.len() != expected {
        return Err(PriorError::BufferSize {
            width,
            height,
            expected,
            actual: rgb.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exact_buffers_and_names_the_mismatch() {
        assert!(validate_rgb8(2, 3, &[0; 18]).is_ok());
        let error = validate_rgb8(2, 3, &[0; 17]).unwrap_err();
        assert!(matches!(
            error,
            PriorError::BufferSize {
                expected: 18,
                actual: 17,
                ..
            }
        ));
        assert!(error.to_string().contains("2x3"));
        assert!(matches!(
            validate_rgb8(0, 3, &[]),
            Err(PriorError::BadDimensions { .. })
        ));
        assert!(matches!(
            validate_rgb8(usize::MAX, 2, &[]),
            Err(PriorError::BadDimensions { .. })
        ));
    }
}
