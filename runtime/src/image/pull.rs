//! Pulling images from OCI registries with `oci-client` into the local store.
//! Plain-HTTP registries are allowed only when named in `insecure`.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest;
use oci_client::secrets::RegistryAuth;

use super::{ImageStore, LocalImage, Reference};
use crate::error::RuntimeError;

/// Pull `image` into `store` and tag it; returns the stored image.
pub async fn pull(store: &ImageStore, image: &str, insecure: &[String]) -> Result<LocalImage, RuntimeError> {
    let reference = Reference::parse(image)?;
    let fail = |reason: String| RuntimeError::ImagePull { image: reference.canonical(), reason };
    let oci_ref: oci_client::Reference = reference.canonical().parse().map_err(|e| fail(format!("{e}")))?;
    let config = ClientConfig { protocol: ClientProtocol::HttpsExcept(insecure.to_vec()), ..Default::default() };
    let client = oci_client::Client::new(config);
    let accepted = vec![
        manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE,
        manifest::IMAGE_LAYER_MEDIA_TYPE,
        manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE,
    ];
    let data = client.pull(&oci_ref, &RegistryAuth::Anonymous, accepted).await.map_err(|e| fail(e.to_string()))?;
    let manifest = data.manifest.ok_or_else(|| fail("the registry sent no manifest".into()))?;
    store.put_verified(&manifest.config.digest, &data.config.data)?;
    for (layer, desc) in data.layers.iter().zip(&manifest.layers) {
        store.put_verified(&desc.digest, &layer.data)?;
    }
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| fail(e.to_string()))?;
    let digest = store.put_blob(&manifest_bytes)?;
    store.tag(&reference, &digest)?;
    store.resolve(&reference.canonical())
}
