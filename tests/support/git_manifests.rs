//! The files a GitOps test commits to its repository, as a user writes them: a Secret of access
//! keys and watches (no status; defaults left to the CRD), as YAML. Flux's and Argo CD's tests
//! commit the same files.

#![allow(dead_code)] // each test binary uses a different part of this module

use serde_json::{Value, json};

use super::world::World;

/// A repository file: its path in the repository and its contents.
pub type File = (String, String);

/// The file `folder/secret-NAME.yaml`: Secret `name` (in `namespace`, or the destination's when
/// `None`) holding an access key id and a secret access key.
pub fn secret_file(
    folder: &str,
    namespace: Option<&str>,
    name: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> File {
    let mut secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {
            "accessKeyId": access_key_id,
            "secretAccessKey": secret_access_key,
        },
    });
    if let Some(namespace) = namespace {
        secret["metadata"]["namespace"] = json!(namespace);
    }
    (format!("{folder}/secret-{name}.yaml"), yaml(&secret))
}

/// The file [`watch_path`]: watch `name` of `workspace` with the credentials of `secret`,
/// `overrides` merged into its spec (see [`World::watch_object`]), in `namespace` or the
/// destination's when `None`.
pub fn watch_file(
    world: &World,
    folder: &str,
    namespace: Option<&str>,
    name: &str,
    workspace: &str,
    secret: &str,
    overrides: Value,
) -> File {
    let watch = world.watch_object(name, workspace, secret, overrides);
    let mut object = serde_json::to_value(watch).expect("a watch serialises");
    if let Some(namespace) = namespace {
        object["metadata"]["namespace"] = json!(namespace);
    }
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }
    (watch_path(folder, name), yaml(&object))
}

/// The repository path of watch `name` in `folder`.
pub fn watch_path(folder: &str, name: &str) -> String {
    format!("{folder}/watch-{name}.yaml")
}

/// `object` as a YAML document.
pub fn yaml(object: &Value) -> String {
    serde_norway::to_string(object).expect("YAML")
}
