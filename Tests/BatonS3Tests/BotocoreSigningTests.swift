import BatonS3
import BatonTestKit
import Foundation
import Testing

/// The signer against botocore (the signer of the AWS SDK for Python and the AWS CLI), run in the machine's
/// `python3`: the same S3 requests signed by both must carry the same `Authorization` header. Without python3
/// and botocore the test passes trivially outside CI and fails under `CI=true`.
@Suite struct BotocoreSigningTests {
    struct Case: Codable, Sendable {
        var method: String
        var origin: String
        var host: String
        var path: String
        var query: [[String]]
        var headers: [String: String]
        var body: String
        var sessionToken: String?
        var unsignedPayload: Bool
    }

    static let cases: [Case] = [
        Case(
            method: "PUT",
            origin: "http://127.0.0.1:9000",
            host: "127.0.0.1:9000",
            path: "/baton-test/baton/lease/orders",
            query: [],
            headers: ["If-None-Match": "*", "Content-Type": "application/json"],
            body: #"{"holder":"a","released":false,"token":1,"ttl_ms":10000,"write":"5eed"}"#,
            sessionToken: nil,
            unsignedPayload: false
        ),
        Case(
            method: "PUT",
            origin: "http://localhost:9000",
            host: "localhost:9000",
            path: "/baton-test/baton/lease/my key/\u{1234}%2F",
            query: [],
            headers: ["If-Match": "\"c81e728d9d4c2f636f067f89cc14862c\""],
            body: "{}",
            sessionToken: "FwoGZXIvYXdzEXAMPLE//token+with/slashes==",
            unsignedPayload: false
        ),
        Case(
            method: "GET",
            origin: "http://127.0.0.1:9000",
            host: "127.0.0.1:9000",
            path: "/baton-test",
            query: [["list-type", "2"], ["prefix", "baton/presence/g%2F/"], ["continuation-token", "a b+c="]],
            headers: [:],
            body: "",
            sessionToken: nil,
            unsignedPayload: false
        ),
        Case(
            method: "DELETE",
            origin: "https://baton-test.s3.eu-west-1.amazonaws.com",
            host: "baton-test.s3.eu-west-1.amazonaws.com",
            path: "/baton/presence/workers/node-1",
            query: [],
            headers: [:],
            body: "",
            sessionToken: "IQoJb3JpZ2luX2VjEXAMPLE",
            unsignedPayload: true
        ),
        Case(
            method: "PUT",
            origin: "https://baton-test.s3.eu-west-1.amazonaws.com",
            host: "baton-test.s3.eu-west-1.amazonaws.com",
            path: "/baton/round/cleaner/08%3A00",
            query: [],
            headers: ["If-None-Match": "*", "Content-Type": "application/json"],
            body: #"{"retention_ms":604800000,"winner":"a"}"#,
            sessionToken: nil,
            unsignedPayload: true
        ),
    ]

    static let script = #"""
        import datetime, json, sys, types
        from urllib.parse import quote
        import botocore.auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        botocore.auth.get_current_datetime = lambda: datetime.datetime(2015, 8, 30, 12, 36, 0)
        answers = []
        for case in json.load(sys.stdin):
            request = AWSRequest(method=case["method"], url=case["origin"] + quote(case["path"], safe="/~"),
                                 headers=dict(case["headers"]), data=case["body"].encode(),
                                 params=[tuple(pair) for pair in case["query"]])
            if case["unsignedPayload"]:
                request.context["client_config"] = types.SimpleNamespace(s3={"payload_signing_enabled": False})
            credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", case.get("sessionToken"))
            botocore.auth.S3SigV4Auth(credentials, "s3", sys.argv[1]).add_auth(request)
            answers.append(request.headers["Authorization"])
        print(json.dumps(answers))
        """#

    /// What botocore signs for `cases` in `region`, or nil (after recording an issue under CI) without botocore.
    static func botocore(_ cases: [Case], region: String) throws -> [String]? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, region]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            if RealServer.isCI { Issue.record("python3 cannot be started under CI=true: \(error)") }
            return nil
        }
        input.fileHandleForWriting.write(try JSONEncoder().encode(cases))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            if RealServer.isCI || !problem.contains("ModuleNotFoundError") {
                Issue.record("python3 with botocore failed (scripts/test installs boto3): \(problem)")
            }
            return nil
        }
        return try JSONDecoder().decode([String].self, from: data)
    }

    @Test(arguments: ["us-east-1", "eu-west-1"])
    func signsS3RequestsAsBotocoreDoes(region: String) throws {
        guard let expected = try Self.botocore(Self.cases, region: region) else { return }
        try #require(expected.count == Self.cases.count)
        for (index, testCase) in Self.cases.enumerated() {
            let signer = SigV4Signer(
                credentials: S3Credentials(
                    accessKeyID: "AKIDEXAMPLE",
                    secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    sessionToken: testCase.sessionToken
                ),
                region: region
            )
            let payloadHash =
                testCase.unsignedPayload
                ? SigV4Signer.unsignedPayload : SigV4Signer.payloadHash(Array(testCase.body.utf8))
            var headers = testCase.headers.map { (name: $0.key, value: $0.value) }
            headers.append(("x-amz-content-sha256", payloadHash))
            let signed = signer.sign(
                SigV4Signer.Request(
                    method: testCase.method,
                    host: testCase.host,
                    path: testCase.path,
                    query: testCase.query.map { (name: $0[0], value: $0[1]) },
                    headers: headers,
                    payloadHash: payloadHash
                ),
                at: SigV4Date(secondsSince1970: 1_440_938_160)
            )
            #expect(signed.authorization == expected[index], "case \(index): \(testCase.method) \(testCase.path)")
        }
    }
}
