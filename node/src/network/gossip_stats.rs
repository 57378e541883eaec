//! Counters of the gossip layer, read from gossipsub's own metrics: how many
//! copies of messages arrived (duplicates included) and how many were new,
//! which the node cannot see otherwise (gossipsub drops duplicates before
//! the node is told of a message).

use prometheus_client::registry::Registry;

/// Prefix of gossipsub's metrics in the node's registry.
pub(crate) const PREFIX: &str = "gossipsub";

/// Gossip counters of one node since it started, over all its topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Messages received from peers, every copy counted (duplicates too,
    /// and copies of this node's own messages sent back to it).
    pub received: u64,
    /// Of those, the messages seen for the first time.
    pub unique: u64,
    /// Messages this node published.
    pub published: u64,
    /// Messages sent to peers: published and forwarded, every copy.
    pub sent: u64,
    /// Message ids asked for with IWANT after a peer's IHAVE: messages
    /// announced lazily before any mesh peer had delivered them.
    pub iwant_requested: u64,
    /// IDONTWANT control messages received.
    pub idontwant_received: u64,
    /// Message ids those IDONTWANT messages carried.
    pub idontwant_ids_received: u64,
}

impl GossipStats {
    /// Copies received beyond the first of each message.
    pub fn duplicates(&self) -> u64 {
        self.received.saturating_sub(self.unique)
    }

    /// The counters of `registry`, in which gossipsub registered its
    /// metrics under [`PREFIX`].
    pub(crate) fn read(registry: &Registry) -> GossipStats {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
            return GossipStats::default();
        }
        GossipStats::parse(&text)
    }

    /// Sums each counter over its labels (topics) in OpenMetrics text.
    fn parse(text: &str) -> GossipStats {
        let mut s = GossipStats::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let Some(name) = name
                .strip_prefix(PREFIX)
                .and_then(|n| n.strip_prefix('_'))
                .and_then(|n| n.strip_suffix("_total"))
            else {
                continue;
            };
            let value = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            let field = match name {
                "topic_msg_recv_counts_unfiltered" => &mut s.received,
                "topic_msg_recv_counts" => &mut s.unique,
                "topic_msg_published" => &mut s.published,
                "topic_msg_sent_counts" => &mut s.sent,
                "topic_iwant_msgs" => &mut s.iwant_requested,
                "idontwant_msgs" => &mut s.idontwant_received,
                "idontwant_msgs_ids" => &mut s.idontwant_ids_received,
                _ => continue,
            };
            *field += value;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_counters_over_topics_and_ignores_the_rest() {
        let text = "# HELP gossipsub_topic_msg_recv_counts Number.\n\
            # TYPE gossipsub_topic_msg_recv_counts counter\n\
            gossipsub_topic_msg_recv_counts_total{hash=\"a\"} 3\n\
            gossipsub_topic_msg_recv_counts_total{hash=\"b\"} 4\n\
            gossipsub_topic_msg_recv_counts_unfiltered_total{hash=\"a\"} 10\n\
            gossipsub_topic_msg_recv_bytes_total{hash=\"a\"} 999\n\
            gossipsub_idontwant_msgs_total 2\n\
            gossipsub_idontwant_msgs_ids_total 5\n\
            gossipsub_topic_msg_last_recv_bytes{hash=\"a\"} 77\n\
            # EOF\n";
        let s = GossipStats::parse(text);
        assert_eq!(s.unique, 7);
        assert_eq!(s.received, 10);
        assert_eq!(s.duplicates(), 3);
        assert_eq!(s.idontwant_received, 2);
        assert_eq!(s.idontwant_ids_received, 5);
        assert_eq!(s.published, 0);
    }

    #[test]
    fn reads_a_real_gossipsub_registry() {
        let mut registry = Registry::default();
        let config = libp2p::gossipsub::ConfigBuilder::default()
            .validation_mode(libp2p::gossipsub::ValidationMode::Anonymous)
            .build()
            .unwrap();
        let _gs = libp2p::gossipsub::Behaviour::<
            libp2p::gossipsub::IdentityTransform,
            libp2p::gossipsub::AllowAllSubscriptionFilter,
        >::new(libp2p::gossipsub::MessageAuthenticity::Anonymous, config)
        .unwrap()
        .with_metrics(
            registry.sub_registry_with_prefix(PREFIX),
            libp2p::gossipsub::MetricsConfig::default(),
        );
        assert_eq!(GossipStats::read(&registry), GossipStats::default());
        // The counters without labels are written even before they count
        // (the per-topic ones appear with their first topic: the
        // integration test `gossip_stats_count_every_copy_and_the_first_ones`
        // and the benchmark read those).
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in ["idontwant_msgs", "idontwant_msgs_ids"] {
            let declared = format!("# TYPE {PREFIX}_{name} counter");
            assert!(text.contains(&declared), "gossipsub has no counter {name}");
        }
    }
}
