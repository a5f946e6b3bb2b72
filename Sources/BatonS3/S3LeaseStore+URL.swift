import Baton

extension S3LeaseStore: URLOpenableStore {
    /// `s3`.
    public static let urlSchemes = ["s3"]
    /// A bucket, a key prefix, and the endpoint and region as query items.
    public static let urlForms = ["s3://bucket/prefix/?endpoint=URL&region=R"]

    /// A store for `url` with the default configuration and credentials from the environment (see
    /// ``init(url:configuration:environment:)``).
    public static func open(_ url: StoreURL) throws -> S3LeaseStore { try S3LeaseStore(url: url) }

    /// The bucket and key prefix of an `s3://` URL: one bucket without a port, no credentials, and the path
    /// without its leading `/` as the prefix (`baton/` for `s3://b/baton/`).
    static func bucketAndPrefix(of url: StoreURL) throws(BatonError) -> (bucket: String, prefix: String) {
        let form = urlForms[0]
        guard urlSchemes.contains(url.scheme), url.hasAuthority else {
            throw .invalidArgument("\(url) is not an s3:// URL: \(form)")
        }
        if url.user != nil || url.password != nil {
            throw .invalidArgument(
                "an s3: store URL carries no credentials; they come from AWS_ACCESS_KEY_ID and "
                    + "AWS_SECRET_ACCESS_KEY: \(form)"
            )
        }
        guard url.hosts.count == 1, url.hosts[0].port == nil else {
            throw .invalidArgument("an s3: store URL names one bucket, without a port: \(form)")
        }
        let path = url.path
        return (url.hosts[0].name, path.hasPrefix("/") ? String(path.dropFirst()) : path)
    }
}
