import Baton
import BatonServer
import Foundation
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `baton serve`'s access file and TLS files.
extension ServeSettings {
    /// The tokens of an access file, and where they came from.
    struct LoadedAccess {
        var policy: AccessPolicy
        var path: String
    }

    /// The tokens of `--access-file`, else of a non-empty `BATON_ACCESS_FILE`, else nil.
    /// - Throws: ``BatonError`` `invalidArgument` starting with `--access-file PATH: ` for a file that cannot be read,
    ///   is writable by group or others, is readable by them while it holds a token in the clear, or is not a valid
    ///   access file (the message names the entry and field, never a token).
    static func accessPolicy(file: String?, environment: [String: String]) throws(BatonError) -> LoadedAccess? {
        guard let path = file ?? environment["BATON_ACCESS_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            return nil
        }
        let mode = try permissions(of: path, option: "--access-file")
        if mode & 0o022 != 0 {
            throw .invalidArgument(
                "--access-file \(path): the file is writable by group or others (mode \(octal(mode))), so they could "
                    + "give themselves a token; run chmod go-w \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidArgument("--access-file \(path): cannot read the file")
        }
        let policy: AccessPolicy
        do {
            policy = try AccessPolicy(json: data)
        } catch {
            throw .invalidArgument("--access-file \(path): \(error.message)")
        }
        if mode & 0o044 != 0, policy.holdsClearTokens {
            throw .invalidArgument(
                "--access-file \(path): the file is readable by group or others (mode \(octal(mode))) and holds "
                    + "tokens in the clear; run chmod 600 \(path), or give each token as \"sha256\"")
        }
        return LoadedAccess(policy: policy, path: path)
    }

    /// The TLS configuration of `--tls-cert` and `--tls-key` (else `BATON_TLS_CERT` and `BATON_TLS_KEY`), or nil
    /// for plain HTTP.
    /// - Throws: ``BatonError`` `invalidArgument` when only one of the two is given, or a file cannot be read, holds
    ///   no PEM certificate or key, or the key does not belong to the certificate.
    static func tls(
        certificate: String?,
        key: String?,
        environment: [String: String]
    ) throws(BatonError) -> TLSConfiguration? {
        func value(_ option: String?, _ variable: String) -> String? {
            option ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        switch (value(certificate, "BATON_TLS_CERT"), value(key, "BATON_TLS_KEY")) {
        case (nil, nil):
            return nil
        case (.some, nil):
            throw .invalidArgument("--tls-cert needs --tls-key, the certificate's private key")
        case (nil, .some):
            throw .invalidArgument("--tls-key needs --tls-cert, the certificate chain to serve")
        case (.some(let certificate), .some(let key)):
            do {
                return try BatonHTTPServer.tlsConfiguration(certificateFile: certificate, privateKeyFile: key)
            } catch {
                throw .invalidArgument("--tls-cert/--tls-key: \(error.message)")
            }
        }
    }

    /// How requests are authenticated, for the start line: `off`, `bearer token`, `access file PATH (N tokens)`.
    static func describeAuthentication(token: Bool, access: LoadedAccess?) -> String {
        var parts: [String] = []
        if token { parts.append("bearer token") }
        if let access {
            let count = access.policy.entries.count
            parts.append("access file \(access.path) (\(count) token\(count == 1 ? "" : "s"))")
        }
        return parts.isEmpty ? "off" : parts.joined(separator: " and ")
    }

    /// The permission bits of the file at `path` (following symbolic links, as a mounted secret often is one).
    private static func permissions(of path: String, option: String) throws(BatonError) -> mode_t {
        let attributes: [FileAttributeKey: Any]
        do {
            // The file a symbolic link leads to: attributesOfItem reads the link itself.
            let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            attributes = try FileManager.default.attributesOfItem(atPath: target)
        } catch {
            let reason = (error as NSError).localizedDescription
            throw .invalidArgument("\(option) \(path): cannot read the file: \(reason)")
        }
        guard let bits = (attributes[.posixPermissions] as? NSNumber)?.uint16Value else {
            throw .invalidArgument("\(option) \(path): cannot read the file's permissions")
        }
        return mode_t(bits) & 0o7777
    }

    private static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
