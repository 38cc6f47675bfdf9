//! W3C trace context for events: the `traceparent` header.

/// The header name of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The current OpenTelemetry span as a `traceparent` value (`00-<trace id>-<span id>-<flags>`),
/// when the `opentelemetry` feature is on and a valid span context is current.
///
/// # Examples
///
/// ```
/// // Without a current span (or without the feature) there is nothing to propagate.
/// assert_eq!(outbox_core::trace::current_traceparent(), None);
/// ```
pub fn current_traceparent() -> Option<String> {
    #[cfg(feature = "opentelemetry")]
    {
        use opentelemetry::trace::TraceContextExt;
        let context = opentelemetry::Context::current();
        let span = context.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            return Some(format!(
                "00-{}-{}-{:02x}",
                span_context.trace_id(),
                span_context.span_id(),
                span_context.trace_flags().to_u8()
            ));
        }
    }
    None
}
