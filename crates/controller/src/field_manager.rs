//! Who wrote: the field manager every write of the controller names (`metadata.managedFields`).

/// The field manager for everything the controller writes, before its identity.
pub const MANAGER: &str = "sealant-controller";

/// `sealant-controller/<identity>`: every write names the replica that made it, so
/// `metadata.managedFields` tells which one wrote. The API server allows 128 characters.
pub fn field_manager(identity: &str) -> String {
    let mut manager = format!("{MANAGER}/{identity}");
    if manager.len() > 128 {
        let mut end = 128;
        while !manager.is_char_boundary(end) {
            end -= 1;
        }
        manager.truncate(end);
    }
    manager
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_managers_name_the_replica_within_the_api_limit() {
        assert_eq!(field_manager("replica-a"), "sealant-controller/replica-a");
        let long = field_manager(&"é".repeat(100));
        assert!(long.len() <= 128, "{}", long.len());
        assert!(long.starts_with("sealant-controller/é"));
    }
}
