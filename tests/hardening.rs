//! The shipped deployment files keep the process unprivileged, with a read-only root and
//! the checkpoint directory as its only writable path: the systemd unit, the Dockerfile and
//! the compose service. (The files are parsed; no image is built and no unit started.)

use std::collections::HashMap;
use std::path::Path;

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `Key=value` settings of a unit's `[Service]` section (every value of a repeated key).
fn service_settings(unit: &str) -> HashMap<String, Vec<String>> {
    let mut settings: HashMap<String, Vec<String>> = HashMap::new();
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            settings
                .entry(key.trim().to_string())
                .or_default()
                .push(value.trim().to_string());
        }
    }
    settings
}

#[test]
fn the_systemd_unit_runs_unprivileged_with_only_its_state_directory_writable() {
    let unit = service_settings(&read("config/binlog2es.service"));
    let one = |key: &str| -> &str {
        match unit.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("{key}: expected one setting, found {other:?}"),
        }
    };
    // An unprivileged user (a transient one), never root.
    assert_eq!(one("DynamicUser"), "yes");
    assert!(!unit.contains_key("User") || one("User") != "root");
    // The whole file system read-only but for the state directory…
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("StateDirectory"), "binlog2es");
    for widening in [
        "ReadWritePaths",
        "ReadWriteDirectories",
        "LogsDirectory",
        "CacheDirectory",
    ] {
        assert!(
            !unit.contains_key(widening),
            "{widening} adds a writable path"
        );
    }
    // …which holds the checkpoint the shipped configuration names.
    let config = read("config/binlog2es.toml");
    assert!(config.contains("path = \"/var/lib/binlog2es/checkpoint.json\""));
    // No way back to privileges.
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "");
    assert_eq!(one("AmbientCapabilities"), "");
    assert_eq!(one("UMask"), "0077");
}

#[test]
fn the_container_runs_as_a_fixed_non_root_user_with_a_read_only_root() {
    // The image's last USER is a numeric, non-zero uid, and the state dir is its volume.
    let dockerfile = read("Dockerfile");
    let runtime = dockerfile
        .rsplit("\nFROM ")
        .next()
        .expect("a runtime stage");
    let user = runtime
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the runtime stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
    assert_ne!(uid, 0, "the image runs as root");
    assert!(
        runtime.contains("VOLUME [\"/var/lib/binlog2es\"]"),
        "{runtime}"
    );

    // The compose service: read-only root, no capabilities, and its one writable volume
    // at the state directory (other mounts read-only).
    let compose = read("docker-compose.yml");
    let service = compose
        .split("\n  binlog2es:\n")
        .nth(1)
        .expect("a binlog2es service")
        .split("\nvolumes:")
        .next()
        .unwrap();
    for line in [
        "read_only: true",
        "cap_drop: [ALL]",
        "no-new-privileges:true",
        "user: \"10001:10001\"",
    ] {
        assert!(
            service.contains(line),
            "compose service lacks `{line}`:\n{service}"
        );
    }
    let mounts: Vec<&str> = service
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("- ") && l.contains(":/"))
        .collect();
    assert!(!mounts.is_empty(), "{service}");
    for mount in mounts {
        assert!(
            mount.ends_with(":ro") || mount == "- binlog2es-state:/var/lib/binlog2es",
            "writable mount other than the state volume: {mount}"
        );
    }
    let docker_config = read("docker/binlog2es.toml");
    assert!(docker_config.contains("path = \"/var/lib/binlog2es/checkpoint.json\""));
}
