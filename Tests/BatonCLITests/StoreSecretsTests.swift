import Baton
import Foundation
import Testing

@testable import baton

/// The store URL from a file, and what `baton run` keeps from its command.
@Suite("baton: store secrets")
struct StoreSecretsTests {
    /// A file holding `text`, removed after `body`.
    func withFile<Value>(_ text: String?, _ body: (String) throws -> Value) throws -> Value {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("baton-store-\(UUID().uuidString)")
            .path
        if let text { _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) }
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try body(path)
    }

    @Test("the store URL comes from --store-file or BATON_STORE_FILE, trimmed; two sources at once are an error")
    func storeFile() throws {
        let resolve = StoreOptions.storeURL(option:file:environment:)
        try withFile("sqlite:/tmp/from-file.db\n") { (path: String) throws in
            #expect(try resolve(nil, path, [:]).path == "/tmp/from-file.db")
            #expect(try resolve(nil, nil, ["BATON_STORE_FILE": path]).path == "/tmp/from-file.db")
            // An option wins over the environment.
            #expect(try resolve(nil, path, ["BATON_STORE": "memory:"]).path == "/tmp/from-file.db")
            #expect(try resolve("memory:", nil, ["BATON_STORE_FILE": path]).scheme == "memory")

            let both = #expect(throws: BatonError.self) { try resolve("memory:", path, [:]) }
            #expect(both?.message == "--store and --store-file are both given; give one of them")
            let bothVariables = #expect(throws: BatonError.self) {
                try resolve(nil, nil, ["BATON_STORE": "memory:", "BATON_STORE_FILE": path])
            }
            #expect(bothVariables?.message == "BATON_STORE and BATON_STORE_FILE are both set; set one of them")
        }
        try withFile("  \n") { (path: String) throws in
            let empty = #expect(throws: BatonError.self) { try resolve(nil, path, [:]) }
            #expect(empty?.message == "--store-file \(path): the file is empty; it must hold the store URL")
        }
        try withFile(nil) { (path: String) throws in
            let missing = #expect(throws: BatonError.self) { try resolve(nil, path, [:]) }
            #expect(missing?.message == "--store-file \(path): cannot read the file: no such file")
            let fromVariable = #expect(throws: BatonError.self) { try resolve(nil, nil, ["BATON_STORE_FILE": path]) }
            #expect(fromVariable?.message == "BATON_STORE_FILE \(path): cannot read the file: no such file")
        }
        try withFile("redis://admin:sekret@h:x\n") { (path: String) throws in
            let bad = #expect(throws: BatonError.self) { try resolve(nil, path, [:]) }
            #expect(bad?.message.hasPrefix("--store-file \(path): ") == true)
            #expect(bad?.message.contains("sekret") == false)
        }
    }

    @Test("baton run withholds the store's variables from its command unless asked")
    func commandEnvironment() throws {
        let environment = [
            "BATON_STORE": "redis://u:p@h:1", "BATON_STORE_FILE": "/run/secrets/store", "AWS_ACCESS_KEY_ID": "AKIA1",
            "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "session", "PATH": "/bin", "HOME": "/root",
        ]
        let redis = try StoreURL("redis://h:1")
        let s3 = try StoreURL("s3://bucket/prefix/")
        let kept = StoreOptions.commandEnvironment(environment, store: redis, passCredentials: false)
        // Not an S3 store: the AWS variables are the command's own and stay.
        #expect(
            kept == [
                "AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "session",
                "PATH": "/bin", "HOME": "/root",
            ])
        #expect(
            StoreOptions.commandEnvironment(environment, store: s3, passCredentials: false) == [
                "PATH": "/bin", "HOME": "/root",
            ])
        #expect(StoreOptions.commandEnvironment(environment, store: s3, passCredentials: true) == environment)
    }

    @Test("baton run's command sees neither BATON_STORE nor BATON_STORE_FILE, unless --pass-store-credentials")
    func runEnvironment() throws {
        let cli = CommandLineTests()
        let database = FileManager.default.temporaryDirectory.appendingPathComponent(
            "baton-env-\(UUID().uuidString).db")
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database.path + suffix) }
        }
        let url = "sqlite:" + database.path
        let fromVariable = try cli.baton(
            ["run", "--key", "env-test", "--", "env"],
            environment: ["BATON_STORE": url, "AWS_ACCESS_KEY_ID": "AKIA-OWN"])
        #expect(fromVariable.status == 0, "\(fromVariable.standardError)")
        let variables = fromVariable.standardOutput.split(separator: "\n")
        #expect(variables.contains("BATON_KEY=env-test"))
        #expect(!variables.contains { $0.hasPrefix("BATON_STORE") }, "\(variables)")
        #expect(!fromVariable.standardOutput.contains(database.path))
        #expect(variables.contains("AWS_ACCESS_KEY_ID=AKIA-OWN"), "not the store's: the command's own")

        try withFile(url + "\n") { (path: String) throws in
            let fromFile = try cli.baton(
                ["run", "--key", "env-test", "--round", "r1", "--", "env"], environment: ["BATON_STORE_FILE": path])
            #expect(fromFile.status == 0, "\(fromFile.standardError)")
            #expect(fromFile.standardOutput.contains("BATON_ROUND=r1"))
            #expect(!fromFile.standardOutput.contains("BATON_STORE"))

            let passed = try cli.baton(
                ["run", "--key", "env-test", "--pass-store-credentials", "--", "env"],
                environment: ["BATON_STORE_FILE": path])
            #expect(passed.status == 0, "\(passed.standardError)")
            #expect(passed.standardOutput.split(separator: "\n").contains("BATON_STORE_FILE=\(path)"))
        }
    }
}
