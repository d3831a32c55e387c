//! Negotiation: the backend's nodes parsed, the frontend's choices, the nodes written.

use super::*;

#[test]
fn negotiation_parses_and_chooses() {
    let nodes: HashMap<&str, &str> = [
        ("max-ring-page-order", "6"),
        ("multi-queue-max-queues", "4"),
        ("feature-max-indirect-segments", "8192"),
        ("feature-persistent", "1"),
        ("feature-flush-cache", "1"),
        ("feature-discard", "1"),
        ("discard-granularity", "4096"),
        ("discard-secure", "1"),
        ("sectors", "2097152"),
        ("sector-size", "4096"),
        ("info", "4"),
        ("device-type", "disk"),
    ]
    .into_iter()
    .collect();
    let f = BackendFeatures::parse(|node, buf| {
        Ok(nodes.get(node).map(|v| {
            buf[..v.len()].copy_from_slice(v.as_bytes());
            v.len()
        }))
    })
    .unwrap();
    assert_eq!(f.max_ring_page_order, 6);
    let info = f.disk_info().unwrap();
    assert_eq!(
        (
            info.logical_block_size,
            info.physical_block_size,
            info.read_only
        ),
        (4096, 4096, true)
    );
    assert!(info.discard.unwrap().secure);
    let cfg = FrontendConfig {
        max_queues: 2,
        max_indirect_segments: 5000,
        ..FrontendConfig::default()
    };
    let p = FrontendParams::negotiate(&cfg, &f);
    assert_eq!(
        (
            p.ring_page_order,
            p.queues,
            p.indirect_segments,
            p.persistent
        ),
        (4, 2, 4096, true)
    );

    let mut out = Vec::new();
    let refs: Vec<GrantRef> = (10..26).collect();
    p.write_nodes::<()>(&[&refs, &refs], &[5, 6], |k, v| {
        out.push((std::string::String::from(k), std::string::String::from(v)));
        Ok(())
    })
    .unwrap();
    let get = |k: &str| out.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    assert_eq!(get("ring-page-order").as_deref(), Some("4"));
    assert_eq!(get("multi-queue-num-queues").as_deref(), Some("2"));
    assert_eq!(get("queue-1/ring-ref15").as_deref(), Some("25"));
    assert_eq!(get("queue-0/event-channel").as_deref(), Some("5"));
    assert_eq!(get("protocol").as_deref(), Some("x86_64-abi"));
    assert_eq!(get("feature-persistent").as_deref(), Some("1"));
    assert_eq!(
        p.write_nodes::<()>(&[&refs], &[5], |_, _| Ok(())),
        Err(NodeError::Shape)
    );

    let single = FrontendParams::negotiate(&FrontendConfig::default(), &BackendFeatures::default());
    let mut out = Vec::new();
    single
        .write_nodes::<()>(&[&[8]], &[3], |k, v| {
            out.push(std::format!("{k}={v}"));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        out,
        [
            "ring-ref=8",
            "event-channel=3",
            "protocol=x86_64-abi",
            "feature-persistent=1"
        ]
    );
}

#[test]
fn negotiation_errors_are_typed() {
    let parse = |node: &'static str, value: &'static str| {
        BackendFeatures::parse(move |n, buf| {
            Ok((n == node).then(|| {
                buf[..value.len()].copy_from_slice(value.as_bytes());
                value.len()
            }))
        })
    };
    assert_eq!(
        parse("sector-size", "1000"),
        Err(FeatureError::OutOfRange {
            node: "sector-size",
            value: 1000
        })
    );
    assert_eq!(
        parse("sectors", "12x"),
        Err(FeatureError::NotANumber { node: "sectors" })
    );
    assert_eq!(
        parse("device-type", "tape"),
        Err(FeatureError::UnknownValue {
            node: "device-type"
        })
    );
    assert_eq!(
        parse("info", "1").unwrap().disk_info(),
        Err(FeatureError::Missing { node: "sectors" })
    );
    assert!(parse("device-type", "cdrom").is_ok());
}
