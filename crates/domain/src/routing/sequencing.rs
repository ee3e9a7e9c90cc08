//! A route's ordering and coalescing as ingest applies them: the keys and event time
//! each delivery carries, and how long it waits before it is due (see
//! `model::sequencing` for the options themselves).

use std::sync::Arc;

use super::EventTypes;
use super::pipeline::RoutedEvent;
use crate::model::sequencing;
use crate::model::{Coalesce, Ordering, Sequence};

/// A route's ordering and coalescing, as ingest applies them to each delivery.
#[derive(Debug)]
pub struct Sequencing {
    ordering: Option<Ordering>,
    coalesce: Option<(Coalesce, EventTypes)>,
}

impl Sequencing {
    /// None when the route has neither. Coalescing types that no longer parse leave the
    /// route not coalescing (they were checked when saved).
    pub fn new(ordering: Option<Ordering>, coalesce: Option<Coalesce>) -> Option<Arc<Sequencing>> {
        let coalesce = coalesce.and_then(|c| {
            let types = EventTypes::parse(&c.types).ok()?;
            Some((c, types))
        });
        (ordering.is_some() || coalesce.is_some())
            .then(|| Arc::new(Sequencing { ordering, coalesce }))
    }

    /// What the delivery of `event` carries: its keys, its event time, and how long it
    /// waits before it is due.
    pub(super) fn sequence(&self, event: &RoutedEvent<'_>) -> Sequence {
        let payload = event.payload();
        let mut sequence = Sequence::default();
        if let Some(ordering) = &self.ordering {
            sequence.order_key = sequencing::key_of(payload, &ordering.key);
            if sequence.order_key.is_some() {
                sequence.delay_ms = ordering.window_ms;
            }
        }
        if let Some((coalesce, types)) = &self.coalesce
            && types.matches(event.facts().event_type)
        {
            sequence.coalesce_key = sequencing::key_of(payload, &coalesce.key);
            if sequence.coalesce_key.is_some() {
                sequence.delay_ms = sequence.delay_ms.max(coalesce.window_ms);
            }
        }
        if sequence.order_key.is_some() || sequence.coalesce_key.is_some() {
            sequence.event_at =
                Some(sequencing::event_time(payload).unwrap_or(event.facts().received_at));
        }
        sequence
    }
}
