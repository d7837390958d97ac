//! The fixed world the simulator draws from: miniApps, Orchestrator flows, and per-group
//! profiles (time zone, locales, regions, flows).
//!
//! Three group names are known and get hand-written profiles (a bank in New York, a telco in
//! India, Omilia's QA group in Athens). Any other group name gets a profile picked by hashing
//! its name, so that adding or reordering groups never changes an existing group's traffic.

use crate::rng::{fnv1a, mix};

/// One miniApp of the catalogue. `difficulty` scales the chance of a `fail` result.
#[derive(Debug)]
pub(crate) struct MiniApp {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) min_secs: f64,
    pub(crate) max_secs: f64,
    pub(crate) difficulty: f64,
}

macro_rules! miniapp {
    ($name:literal, $kind:literal, $min:literal, $max:literal, $difficulty:literal) => {
        MiniApp {
            name: $name,
            kind: $kind,
            min_secs: $min,
            max_secs: $max,
            difficulty: $difficulty,
        }
    };
}

pub(crate) const MINIAPPS: &[MiniApp] = &[
    miniapp!("Intent", "Intent", 8.0, 45.0, 1.6),
    miniapp!("AccountNumber", "AccountNumber", 8.0, 50.0, 1.2),
    miniapp!("YesNo", "YesNo", 5.0, 15.0, 0.5),
    miniapp!("Date", "Date", 6.0, 30.0, 1.0),
    miniapp!("Amount", "Amount", 6.0, 35.0, 1.0),
    miniapp!("PIN", "Alphanumeric", 6.0, 30.0, 1.1),
    miniapp!("Address", "Alphanumeric", 12.0, 60.0, 1.7),
    miniapp!("CustomerId", "Alphanumeric", 8.0, 45.0, 1.3),
    miniapp!("PhoneNumber", "PhoneNumber", 7.0, 35.0, 0.9),
    miniapp!("CardNumber", "CreditCard", 10.0, 50.0, 1.2),
    miniapp!("FullName", "Name", 6.0, 40.0, 1.4),
    miniapp!("MainMenu", "Menu", 5.0, 25.0, 0.7),
];

/// Index of a miniApp in [`MINIAPPS`] by name; a typo in the tables below fails the tests.
fn ma(name: &str) -> u8 {
    MINIAPPS
        .iter()
        .position(|m| m.name == name)
        .map(|i| i as u8)
        .unwrap_or_else(|| panic!("unknown miniApp {name} in the catalogue"))
}

/// An Orchestrator flow: a name, the miniApps it runs in order, and how often callers reach it.
#[derive(Debug)]
pub(crate) struct FlowDef {
    pub(crate) name: &'static str,
    pub(crate) steps: &'static [&'static str],
    pub(crate) weight: f64,
}

macro_rules! flow {
    ($name:literal, [$($step:literal),+], $weight:literal) => {
        FlowDef { name: $name, steps: &[$($step),+], weight: $weight }
    };
}

const BANK_FLOWS: &[FlowDef] = &[
    flow!(
        "banking_main_flow",
        ["Intent", "AccountNumber", "PIN", "YesNo"],
        0.5
    ),
    flow!(
        "card_services_flow",
        ["Intent", "CardNumber", "Date", "YesNo"],
        0.25
    ),
    flow!(
        "payments_flow",
        ["AccountNumber", "PIN", "Amount", "Date", "YesNo"],
        0.15
    ),
    flow!("loan_inquiry_flow", ["Intent", "CustomerId", "Amount"], 0.1),
];

const TELCO_FLOWS: &[FlowDef] = &[
    flow!(
        "billing_flow",
        ["PhoneNumber", "Intent", "Amount", "YesNo"],
        0.4
    ),
    flow!(
        "tech_support_flow",
        ["PhoneNumber", "MainMenu", "Intent", "YesNo", "Address"],
        0.3
    ),
    flow!(
        "plan_change_flow",
        ["PhoneNumber", "PIN", "Intent", "YesNo"],
        0.2
    ),
    flow!(
        "sim_activation_flow",
        ["PhoneNumber", "CustomerId", "Date"],
        0.1
    ),
];

const QA_FLOWS: &[FlowDef] = &[
    flow!(
        "car_retail_flow_test",
        ["Intent", "FullName", "PhoneNumber", "Date", "YesNo"],
        0.45
    ),
    flow!(
        "insurance_claim_flow",
        ["CustomerId", "Date", "Address", "Amount", "YesNo"],
        0.35
    ),
    flow!("qa_smoke_flow", ["YesNo", "Date"], 0.2),
];

/// Flows that unknown groups draw 3 or 4 of.
const GENERIC_FLOWS: &[FlowDef] = &[
    flow!(
        "customer_service_flow",
        ["MainMenu", "Intent", "CustomerId", "YesNo"],
        0.4
    ),
    flow!("order_status_flow", ["CustomerId", "Date", "YesNo"], 0.25),
    flow!(
        "appointment_flow",
        ["FullName", "Date", "PhoneNumber", "YesNo"],
        0.2
    ),
    flow!(
        "payments_flow",
        ["AccountNumber", "PIN", "Amount", "Date", "YesNo"],
        0.15
    ),
    flow!(
        "address_change_flow",
        ["CustomerId", "PIN", "Address", "YesNo"],
        0.1
    ),
    flow!(
        "billing_flow",
        ["PhoneNumber", "Intent", "Amount", "YesNo"],
        0.2
    ),
];

/// The nested (non-root) flow that some root dialogs call into.
pub(crate) const SUBFLOW: FlowDef = flow!("authentication_subflow", ["CustomerId", "PIN"], 1.0);

/// A time zone, with the standard-time offset used if the zone database lacks it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ZoneDef {
    pub(crate) name: &'static str,
    pub(crate) fallback_offset_secs: i32,
}

const ZONES: &[ZoneDef] = &[
    ZoneDef {
        name: "America/New_York",
        fallback_offset_secs: -5 * 3600,
    },
    ZoneDef {
        name: "America/Chicago",
        fallback_offset_secs: -6 * 3600,
    },
    ZoneDef {
        name: "America/Los_Angeles",
        fallback_offset_secs: -8 * 3600,
    },
    ZoneDef {
        name: "Europe/London",
        fallback_offset_secs: 0,
    },
    ZoneDef {
        name: "Europe/Athens",
        fallback_offset_secs: 2 * 3600,
    },
    ZoneDef {
        name: "Europe/Berlin",
        fallback_offset_secs: 3600,
    },
    ZoneDef {
        name: "Asia/Kolkata",
        fallback_offset_secs: 5 * 3600 + 1800,
    },
    ZoneDef {
        name: "Asia/Singapore",
        fallback_offset_secs: 8 * 3600,
    },
];

pub(crate) const CHANNELS: [&str; 2] = ["omIVR", "chat"];
pub(crate) const REGIONS: [&str; 2] = ["us1", "eu1"];
pub(crate) const LOCALES: [&str; 4] = ["en-US", "es-US", "el-GR", "en-GB"];

pub(crate) const FAIL_REASONS: [&str; 3] = ["max_attempts", "not_recognized", "validation_failed"];

/// A flow resolved for one group: its miniApps as catalogue indexes and its stable id.
#[derive(Debug)]
pub(crate) struct Flow {
    pub(crate) name: &'static str,
    pub(crate) id: String,
    pub(crate) steps: Vec<u8>,
    pub(crate) weight: f64,
}

/// Everything the simulator needs to know about one group.
#[derive(Debug)]
pub(crate) struct GroupProfile {
    pub(crate) name: String,
    /// The name with JSON string escapes applied, ready to paste between quotes.
    pub(crate) name_json: String,
    pub(crate) name_hash: u64,
    pub(crate) zone: ZoneDef,
    pub(crate) locale_weights: [f64; 4],
    pub(crate) region_weights: [f64; 2],
    pub(crate) flows: Vec<Flow>,
    pub(crate) flow_weights: Vec<f64>,
    pub(crate) subflow: Flow,
    /// `miniapp_id` of each catalogue miniApp: the same for a name in every group.
    pub(crate) miniapp_ids: Vec<String>,
}

fn zone(name: &str) -> ZoneDef {
    *ZONES
        .iter()
        .find(|z| z.name == name)
        .unwrap_or_else(|| panic!("unknown zone {name} in the catalogue"))
}

/// Callers' languages follow the group's market.
fn locale_weights_for(zone: &str) -> [f64; 4] {
    // Order as in LOCALES: en-US, es-US, el-GR, en-GB.
    match zone {
        z if z.starts_with("America/") => [0.75, 0.25, 0.0, 0.0],
        "Europe/Athens" => [0.15, 0.0, 0.55, 0.30],
        z if z.starts_with("Europe/") => [0.2, 0.0, 0.05, 0.75],
        _ => [0.4, 0.0, 0.0, 0.6],
    }
}

/// Groups are served mostly from the region nearest to them, with some traffic in the other.
fn region_weights_for(zone: &str) -> [f64; 2] {
    // Order as in REGIONS: us1, eu1.
    match zone {
        z if z.starts_with("America/") => [0.9, 0.1],
        z if z.starts_with("Europe/") => [0.15, 0.85],
        _ => [0.4, 0.6],
    }
}

/// A stable, UUID-shaped identifier derived from a name, so ids survive restarts and seeds.
pub(crate) fn stable_id(namespace: &str, name: &str) -> String {
    let hi = mix(fnv1a(namespace.as_bytes()) ^ mix(fnv1a(name.as_bytes())));
    let lo = mix(hi ^ 0x5bd1_e995);
    format_uuid(hi, lo)
}

/// Formats 128 bits as `8-4-4-4-12` lowercase hex.
pub(crate) fn format_uuid(hi: u64, lo: u64) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn resolve(group: &str, def: &FlowDef) -> Flow {
    Flow {
        name: def.name,
        id: stable_id(group, def.name),
        steps: def.steps.iter().map(|s| ma(s)).collect(),
        weight: def.weight,
    }
}

impl GroupProfile {
    pub(crate) fn new(name: &str) -> GroupProfile {
        let name_hash = fnv1a(name.as_bytes());
        let (zone, defs): (ZoneDef, Vec<&FlowDef>) = match name {
            "acme-bank" => (zone("America/New_York"), BANK_FLOWS.iter().collect()),
            "globex-telco" => (zone("Asia/Kolkata"), TELCO_FLOWS.iter().collect()),
            "ocp-qa" => (zone("Europe/Athens"), QA_FLOWS.iter().collect()),
            _ => {
                let h = mix(name_hash);
                let zone = ZONES[(h % ZONES.len() as u64) as usize];
                let count = 3 + ((h >> 8) % 2) as usize;
                let start = ((h >> 16) % GENERIC_FLOWS.len() as u64) as usize;
                let defs = (0..count)
                    .map(|i| &GENERIC_FLOWS[(start + i) % GENERIC_FLOWS.len()])
                    .collect();
                (zone, defs)
            }
        };
        let flows: Vec<Flow> = defs.into_iter().map(|d| resolve(name, d)).collect();
        GroupProfile {
            name: name.to_owned(),
            name_json: json_escape(name),
            name_hash,
            zone,
            locale_weights: locale_weights_for(zone.name),
            region_weights: region_weights_for(zone.name),
            flow_weights: flows.iter().map(|f| f.weight).collect(),
            flows,
            subflow: resolve(name, &SUBFLOW),
            miniapp_ids: MINIAPPS
                .iter()
                .map(|m| stable_id("miniapp", m.name))
                .collect(),
        }
    }
}

/// Escapes a string for use inside a JSON string literal (without the quotes).
pub(crate) fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_have_two_to_five_known_steps() {
        for def in BANK_FLOWS
            .iter()
            .chain(TELCO_FLOWS)
            .chain(QA_FLOWS)
            .chain(GENERIC_FLOWS)
        {
            assert!((2..=5).contains(&def.steps.len()), "{}", def.name);
            for s in def.steps {
                ma(s);
            }
        }
        for m in MINIAPPS {
            assert!(m.min_secs >= 5.0 && m.max_secs <= 60.0 && m.min_secs < m.max_secs);
        }
    }

    #[test]
    fn unknown_groups_get_three_or_four_flows() {
        for g in ["a", "initech", "umbrella-corp", "x\"y"] {
            let p = GroupProfile::new(g);
            assert!((3..=4).contains(&p.flows.len()), "{g}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(json_escape("a\"b\\c\u{1}"), "a\\\"b\\\\c\\u0001");
        let v: String = serde_json::from_str(&format!("\"{}\"", json_escape("é\"\n"))).unwrap();
        assert_eq!(v, "é\"\n");
    }
}
