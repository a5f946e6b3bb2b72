import Baton

/// An AWS access key: the key id, its secret, and a session token for temporary credentials.
///
/// ``description`` shows the key id only; the secret and the token are never printed.
public struct S3Credentials: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The access key id (`AKIA...`).
    public var accessKeyID: String
    /// The secret access key. Never printed.
    public var secretAccessKey: String
    /// The session token of temporary credentials, if any. Never printed.
    public var sessionToken: String?

    /// Creates credentials.
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// The credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (optional).
    /// - Throws: ``Baton/BatonError`` `unauthorized` naming the variable that is missing or empty.
    public static func fromEnvironment(_ environment: [String: String]) throws -> S3Credentials {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty else {
            throw BatonError.unauthorized("AWS_ACCESS_KEY_ID is not set: the S3 store needs an access key")
        }
        guard let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
            throw BatonError.unauthorized("AWS_SECRET_ACCESS_KEY is not set for the access key \(id)")
        }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    /// `access key AKIA... (secret hidden)`.
    public var description: String {
        "access key \(accessKeyID) (secret hidden\(sessionToken == nil ? "" : ", session token hidden"))"
    }

    /// The same as ``description``.
    public var debugDescription: String { description }

    /// Shows the key id only, so `dump` and the debugger do not print the secret.
    public var customMirror: Mirror { Mirror(self, children: ["accessKeyID": accessKeyID]) }
}
