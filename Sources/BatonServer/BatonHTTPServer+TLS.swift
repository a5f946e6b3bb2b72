import Baton
import Foundation
import HummingbirdTLS
import NIOSSL

extension BatonHTTPServer {
    /// The TLS configuration of a server presenting the certificate chain in `certificateFile` with the private key
    /// in `privateKeyFile`, both PEM, for ``Configuration-swift.struct/tls``. TLS 1.2 at least; no client
    /// certificates asked.
    ///
    /// The pair is checked here, so that a server that starts can answer: the certificate file holds at least one
    /// certificate (the server's first, then its intermediates), the key file an unencrypted private key, and the
    /// key belongs to the first certificate.
    /// - Throws: ``BatonError`` `invalidArgument` naming the file and what is wrong with it (never its contents).
    public static func tlsConfiguration(
        certificateFile: String,
        privateKeyFile: String
    ) throws(BatonError) -> TLSConfiguration {
        let certificateBytes = try readFile(certificateFile, "certificate")
        let keyBytes = try readFile(privateKeyFile, "private key")
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificateBytes)
        } catch {
            chain = []
        }
        guard !chain.isEmpty else {
            throw .invalidArgument(
                "the certificate file \(certificateFile) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw .invalidArgument(
                "the private key file \(privateKeyFile) holds no unencrypted PEM private key "
                    + "(-----BEGIN PRIVATE KEY-----, RSA or EC)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw .invalidArgument(
                "the private key in \(privateKeyFile) does not belong to the certificate in \(certificateFile)")
        }
        return configuration
    }

    private static func readFile(_ path: String, _ what: String) throws(BatonError) -> [UInt8] {
        guard FileManager.default.isReadableFile(atPath: path), let data = FileManager.default.contents(atPath: path)
        else {
            let reason = FileManager.default.fileExists(atPath: path) ? "it is not readable" : "no such file"
            throw .invalidArgument("cannot read the \(what) file \(path): \(reason)")
        }
        return Array(data)
    }
}
