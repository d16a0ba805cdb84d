//! Collects the crate's log events (retries, warnings) so the R wrappers
//! can show them as R messages and warnings after each call.
//!
//! The Rust core logs through `tracing`; nothing shows those events in R by
//! itself. This subscriber keeps the `mlflowreg` events of level INFO and
//! above in a bounded buffer, and `take_events_()` hands them to R. The
//! events carry what the core logs: method, route, status, attempt and
//! error messages, never request bodies, query strings or credentials.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{Mutex, Once};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Events kept between two `take_events_()` calls; older ones are dropped
/// and counted.
const MAX_EVENTS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LogEvent {
    /// "ERROR", "WARN" or "INFO".
    pub level: String,
    pub message: String,
}

struct Buffer {
    events: VecDeque<LogEvent>,
    dropped: usize,
}

static BUFFER: Mutex<Buffer> = Mutex::new(Buffer {
    events: VecDeque::new(),
    dropped: 0,
});

/// Installs the collector as the process's tracing subscriber, once. A
/// subscriber installed earlier by someone else is left in place.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Collector);
    });
}

/// Removes and returns the events collected so far, with a final line
/// counting any that were dropped.
pub(crate) fn take() -> Vec<LogEvent> {
    let mut buffer = BUFFER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut events: Vec<LogEvent> = buffer.events.drain(..).collect();
    if buffer.dropped > 0 {
        events.push(LogEvent {
            level: "INFO".into(),
            message: format!("{} more log events were dropped", buffer.dropped),
        });
        buffer.dropped = 0;
    }
    events
}

struct Collector;

impl Subscriber for Collector {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::INFO && metadata.target().starts_with("mlflowreg")
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::INFO)
    }

    // The crate opens no spans; every span gets the same id.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut message = fields.message;
        if !fields.rest.is_empty() {
            let _ = write!(message, " ({})", fields.rest.join(", "));
        }
        let mut buffer = BUFFER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buffer.events.len() == MAX_EVENTS {
            buffer.events.pop_front();
            buffer.dropped += 1;
        }
        buffer.events.push_back(LogEvent {
            level: event.metadata().level().to_string(),
            message,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The event's message and its other fields as `name: value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push(format!("{}: {value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.push(format!("{}: {value}", field.name()));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.rest.push(format!("{}: {}", field.name(), (value * 1000.0).round() / 1000.0));
    }
}
