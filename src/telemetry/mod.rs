//! What a process tells the outside: logs to stderr ([`logs`]); metrics ([`metrics`]) and
//! traces ([`traces`]) by OTLP (HTTP/protobuf), each signal on only where it has an endpoint.
//!
//! An endpoint comes from the command line or config file, a base URL to which the signal's
//! path is added (`/v1/metrics`, `/v1/traces`); else from the standard variables, which the SDK
//! reads itself (with the other `OTEL_*` settings): `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`, a
//! full URL, or `OTEL_EXPORTER_OTLP_ENDPOINT`, a base URL for both signals. A failed export is logged by the SDK
//! (at `warn`), never silent.

pub mod logs;
mod metrics;
mod traces;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

/// The configured endpoints (base URLs) of each signal.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub metrics: Option<String>,
    pub traces: Option<String>,
}

/// The running exports; [`Export::shutdown`] sends what is left.
pub struct Export {
    metrics: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// Starts the exports of the process `service` (`autorma-worker`, ...) that have an
/// endpoint; `instance` names this process among its kind (`command@host:pid`).
pub fn start(service: &str, instance: &str, endpoints: &Endpoints) -> anyhow::Result<Export> {
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .with_attributes([
            KeyValue::new("service.instance.id", instance.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ])
        .build();
    let metrics = match Target::of(Signal::Metrics, endpoints.metrics.as_deref())? {
        Some(target) => Some(metrics::start(&target, resource.clone()).context("cannot export metrics")?),
        None => None,
    };
    let traces = match Target::of(Signal::Traces, endpoints.traces.as_deref())? {
        Some(target) => Some(traces::start(&target, resource).context("cannot export traces")?),
        None => None,
    };
    Ok(Export { metrics, traces })
}

impl Export {
    /// Exports what was recorded since the last export, then stops. Blocking.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "the last traces export failed");
        }
        if let Some(provider) = self.metrics
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "the last metrics export failed");
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Metrics,
    Traces,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
        }
    }

    /// The option that sets its endpoint (as in `--help` and the config file).
    fn option(self) -> &'static str {
        match self {
            Signal::Metrics => "otlp_endpoint",
            Signal::Traces => "otlp_traces_endpoint",
        }
    }

    /// The standard variables that switch it on by themselves.
    fn variables(self) -> [&'static str; 2] {
        match self {
            Signal::Metrics => ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"],
            Signal::Traces => ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"],
        }
    }
}

/// Where one signal goes.
#[derive(Debug, PartialEq)]
enum Target {
    /// The full URL of the configured endpoint.
    Url(String),
    /// Wherever the standard variables say; the SDK reads them.
    FromEnvironment,
}

impl Target {
    /// `None`: no endpoint for this signal, it is not exported.
    fn of(signal: Signal, configured: Option<&str>) -> anyhow::Result<Option<Target>> {
        Self::resolve(signal, configured, |name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
    }

    fn resolve(
        signal: Signal,
        configured: Option<&str>,
        is_set: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Option<Target>> {
        if let Some(base) = configured {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                anyhow::bail!(
                    "invalid `{}` = `{base}`: expected an http:// or https:// URL (--{})",
                    signal.option(),
                    signal.option().replace('_', "-")
                );
            }
            return Ok(Some(Target::Url(format!("{}/v1/{}", base.trim_end_matches('/'), signal.name()))));
        }
        if signal.variables().iter().any(|v| is_set(v)) {
            return Ok(Some(Target::FromEnvironment));
        }
        tracing::debug!(signal = signal.name(), "no OTLP endpoint configured: not exported");
        Ok(None)
    }

    fn describe(&self) -> &str {
        match self {
            Target::Url(url) => url,
            Target::FromEnvironment => "from OTEL_EXPORTER_OTLP_*",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_its_own_endpoint_and_variables() {
        let none = |_: &str| false;
        let url = |t: Option<Target>| match t {
            Some(Target::Url(url)) => url,
            other => panic!("expected a URL, got {other:?}"),
        };
        assert_eq!(
            url(Target::resolve(Signal::Metrics, Some("http://p:9090/api/v1/otlp/"), none).unwrap()),
            "http://p:9090/api/v1/otlp/v1/metrics"
        );
        assert_eq!(
            url(Target::resolve(Signal::Traces, Some("http://j:4318"), none).unwrap()),
            "http://j:4318/v1/traces"
        );
        assert_eq!(Target::resolve(Signal::Traces, None, none).unwrap(), None);

        // The metrics variable does not switch traces on; the shared one switches on both.
        let metrics_only = |v: &str| v == "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
        assert_eq!(Target::resolve(Signal::Traces, None, metrics_only).unwrap(), None);
        assert_eq!(Target::resolve(Signal::Metrics, None, metrics_only).unwrap(), Some(Target::FromEnvironment));
        let shared = |v: &str| v == "OTEL_EXPORTER_OTLP_ENDPOINT";
        assert_eq!(Target::resolve(Signal::Traces, None, shared).unwrap(), Some(Target::FromEnvironment));

        let error = Target::resolve(Signal::Traces, Some("j:4318"), none).unwrap_err().to_string();
        assert!(error.contains("--otlp-traces-endpoint"), "{error}");
    }
}
