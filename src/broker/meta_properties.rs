//! `meta.properties`: the data directory's identity (cluster id and node id),
//! in the same `key=value` form Kafka writes.

use std::path::Path;

use uuid::Uuid;

use super::BrokerError;

const FILE_NAME: &str = "meta.properties";

/// Returns the cluster id stored in `dir`, creating the file on first start.
/// A directory written by another node id is refused, as Kafka refuses it.
pub fn load_or_create(
    dir: &Path,
    node_id: i32,
    expected_cluster_id: Option<&str>,
) -> Result<String, BrokerError> {
    let path = dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let get = |key: &str| {
                text.lines()
                    .filter_map(|l| l.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().to_string())
            };
            let cluster_id = get("cluster.id").ok_or_else(|| {
                BrokerError::InconsistentDataDir(format!("{} has no cluster.id", path.display()))
            })?;
            if let Some(expected) = expected_cluster_id.filter(|e| *e != cluster_id) {
                return Err(BrokerError::InconsistentDataDir(format!(
                    "{} belongs to cluster {cluster_id}, not cluster {expected}; \
                     use another --data-dir",
                    path.display()
                )));
            }
            if let Some(stored) = get("node.id") {
                if stored != node_id.to_string() {
                    return Err(BrokerError::InconsistentDataDir(format!(
                        "{} belongs to node {stored}, but this broker is node {node_id}; \
                         pass --node-id {stored} or use another --data-dir",
                        path.display()
                    )));
                }
            }
            Ok(cluster_id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = expected_cluster_id
                .map_or_else(|| base64_url(Uuid::new_v4().as_bytes()), str::to_string);
            let text = format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
            let tmp = dir.join(format!("{FILE_NAME}.tmp"));
            std::fs::write(&tmp, text).map_err(|e| BrokerError::io("writing", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| BrokerError::io("writing", &path, e))?;
            Ok(cluster_id)
        }
        Err(e) => Err(BrokerError::io("reading", &path, e)),
    }
}

/// A cluster id every node started with the same quorum voters derives
/// alike, so a cluster forms without formatting its data directories with
/// an agreed id first (Kafka's `kafka-storage format --cluster-id`): 16
/// bytes from CRC-32C of the voter list, in Kafka's cluster id form.
pub fn cluster_id_for_voters(voters: &str) -> String {
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let crc = crc32c::crc32c(format!("wharf-cluster-{i}:{voters}").as_bytes());
        chunk.copy_from_slice(&crc.to_be_bytes());
    }
    base64_url(&bytes)
}

/// URL-safe base64 without padding, the form Kafka uses for cluster ids.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_of_another_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), 1, Some("abc")).unwrap();
        assert_eq!(first, "abc");
        assert_eq!(load_or_create(dir.path(), 1, Some("abc")).unwrap(), "abc");
        assert_eq!(load_or_create(dir.path(), 1, None).unwrap(), "abc");
        assert!(load_or_create(dir.path(), 1, Some("xyz")).is_err());
    }

    #[test]
    fn nodes_with_the_same_voters_derive_the_same_cluster_id() {
        let a = cluster_id_for_voters("1@h:1,2@h:2");
        assert_eq!(a, cluster_id_for_voters("1@h:1,2@h:2"));
        assert_ne!(a, cluster_id_for_voters("1@h:1,2@h:3"));
        assert_eq!(a.len(), 22);
    }

    #[test]
    fn base64_url_matches_known_vectors() {
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64_url(&[0u8; 16]).len(), 22);
    }

    #[test]
    fn keeps_the_cluster_id_and_refuses_another_node_id() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), 1, None).unwrap();
        assert_eq!(load_or_create(dir.path(), 1, None).unwrap(), first);
        assert!(matches!(
            load_or_create(dir.path(), 2, None),
            Err(BrokerError::InconsistentDataDir(_))
        ));
    }
}
