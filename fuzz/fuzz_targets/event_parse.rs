//! The event parser and validator: any bytes as one NDJSON line. Never panics; a valid event
//! survives the log encoding unchanged, and admitting and applying it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocp_metrics_core::rollup::{Admission, Horizons, StateLimits};
use ocp_metrics_core::{Event, Rollups};
use ocp_metrics_server::wire::WireEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now: jiff::Timestamp = "2024-03-27T12:00:00Z".parse().unwrap();
    let Ok(wire) = WireEvent::parse(text) else {
        return;
    };
    let Ok(event) = Event::parse(&wire.draft(), now) else {
        return;
    };
    let bytes = postcard::to_allocvec(&event).unwrap();
    let back: Event = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, event);
    let mut rollups = Rollups::new();
    let h = Horizons::at(now);
    let limits = StateLimits {
        dimension_values_max: 1,
        rt_sessions_per_group_max: 1,
    };
    if rollups
        .admit(&event, h, &limits, &mut Admission::new())
        .is_ok()
    {
        rollups.apply(&event, h);
    }
    rollups.apply(&event, h);
    rollups.evict(Horizons::at(now));
    rollups.compact();
});
