import AsyncHTTPClient
import Baton
import Foundation
import NIOCore
import NIOHTTP1

/// Signed requests to one bucket, path-style (`endpoint/bucket/key`) for a custom endpoint and
/// virtual-hosted style (`bucket.s3.region.amazonaws.com/key`) for AWS.
///
/// Maps what S3 answers to what the store needs: a status, an ETag, a body; `403` becomes
/// ``Baton/BatonError/Code/unauthorized`` naming S3's error code (never the secret), an unreachable endpoint
/// `storeUnavailable`. Requests go through the HTTP client of the running store (``S3Session``); they have no
/// deadline of their own: the ``Baton/LeaseStore`` front bounds each store operation, which may make several.
final class S3Client: Sendable {
    /// What S3 answered.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var etag: String?
        var body: [UInt8]

        /// The `<Code>` of an S3 error document, if the body is one.
        var errorCode: String? { XMLScan.values(of: "Code", in: body).first }
    }

    let session: S3Session
    let signer: SigV4Signer
    let bucket: String
    /// `scheme://host[:port]` of the endpoint.
    let origin: String
    /// The `Host` header.
    let host: String
    /// The path before an object key: `/bucket/` path-style, `/` virtual-hosted.
    let basePath: String
    /// How the store is named in errors: the redacted store URL.
    let name: String

    init(
        session: S3Session,
        signer: SigV4Signer,
        bucket: String,
        endpoint: String?,
        name: String
    ) throws {
        self.session = session
        self.signer = signer
        self.bucket = bucket
        self.name = name
        if let endpoint {
            guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let hostName = url.host, !hostName.isEmpty,
                url.path.isEmpty || url.path == "/", url.query == nil
            else {
                throw BatonError.invalidArgument(
                    "the S3 endpoint must be http://host[:port] or https://host[:port], got \(endpoint)"
                )
            }
            let shownHost = hostName.contains(":") ? "[\(hostName)]" : hostName
            let defaultPort = scheme == "https" ? 443 : 80
            let hostHeader = url.port.map { $0 == defaultPort ? shownHost : "\(shownHost):\($0)" } ?? shownHost
            self.origin = "\(scheme)://\(hostHeader)"
            self.host = hostHeader
            self.basePath = "/\(bucket)/"
        } else {
            self.host = "\(bucket).s3.\(signer.region).amazonaws.com"
            self.origin = "https://\(host)"
            self.basePath = "/"
        }
    }

    /// Sends one signed request for the object `key` (nil: the bucket itself) and returns the answer, whatever
    /// its status except `403` and `5xx`, which throw.
    func send(
        _ method: HTTPMethod,
        key: String?,
        query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = []
    ) async throws -> Response {
        let path = key.map { basePath + $0 } ?? String(basePath.dropLast(basePath.count > 1 ? 1 : 0))
        let payloadHash = body.isEmpty ? SigV4Signer.emptyPayloadHash : SigV4Signer.payloadHash(body)
        var signedHeaders = headers
        signedHeaders.append(("x-amz-content-sha256", payloadHash))
        let now = Int64(Date().timeIntervalSince1970)
        let signed = signer.sign(
            SigV4Signer.Request(
                method: method.rawValue,
                host: host,
                path: path,
                query: query,
                headers: signedHeaders,
                payloadHash: payloadHash
            ),
            at: SigV4Date(secondsSince1970: now)
        )
        var url = origin + SigV4Signer.encode(path, keepSlash: true)
        if !query.isEmpty {
            url += "?"
            url += query.map {
                "\(SigV4Signer.encode($0.name, keepSlash: false))=\(SigV4Signer.encode($0.value, keepSlash: false))"
            }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (headerName, value) in signed.headers { request.headers.add(name: headerName, value: value) }
        if !body.isEmpty {
            request.headers.add(name: "content-length", value: String(body.count))
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let http = try await session.client()
        let response: HTTPClientResponse
        var bytes: [UInt8]
        do {
            response = try await http.execute(request, deadline: .distantFuture)
            let buffer = try await response.body.collect(upTo: 8 << 20)
            bytes = Array(buffer.readableBytesView)
        } catch let error as HTTPClientError where error == .connectTimeout {
            throw BatonError.timeout("\(name): \(method) \(path) could not connect in time")
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw BatonError.storeUnavailable("\(name): \(method) \(path) failed: \(error)")
        }
        let answer = Response(status: response.status, etag: response.headers.first(name: "etag"), body: bytes)
        if response.status == .forbidden {
            let code = answer.errorCode ?? "AccessDenied"
            throw BatonError.unauthorized(
                "\(name) refused \(method) \(path) for \(signer.credentials.description): \(code)"
            )
        }
        if response.status.code >= 500 {
            throw BatonError.storeUnavailable(
                "\(name) answered \(method) \(path) with \(response.status.code) \(answer.errorCode ?? "")"
            )
        }
        if response.status == .notFound, answer.errorCode == "NoSuchBucket" {
            throw BatonError.storeUnavailable("\(name): the bucket \(bucket) does not exist")
        }
        return answer
    }
}

/// The text of XML elements, found by scanning (S3's answers are small, flat documents).
enum XMLScan {
    /// The texts of every `<tag>...</tag>` in `document`, in order, with XML entities decoded.
    static func values(of tag: String, in document: [UInt8]) -> [String] {
        values(of: tag, in: String(decoding: document, as: UTF8.self))
    }

    /// The texts of every `<tag>...</tag>` in `document`.
    static func values(of tag: String, in document: String) -> [String] {
        var results: [String] = []
        var rest = document[...]
        let open = "<\(tag)>"
        let close = "</\(tag)>"
        while let start = rest.range(of: open), let end = rest[start.upperBound...].range(of: close) {
            results.append(decodeEntities(String(rest[start.upperBound..<end.lowerBound])))
            rest = rest[end.upperBound...]
        }
        return results
    }

    /// The parts of `document` between `<tag>` and `</tag>`, as documents of their own.
    static func elements(_ tag: String, in document: String) -> [String] {
        var results: [String] = []
        var rest = document[...]
        while let start = rest.range(of: "<\(tag)>"), let end = rest[start.upperBound...].range(of: "</\(tag)>") {
            results.append(String(rest[start.upperBound..<end.lowerBound]))
            rest = rest[end.upperBound...]
        }
        return results
    }

    private static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&quot;", with: "\"")
            .replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
