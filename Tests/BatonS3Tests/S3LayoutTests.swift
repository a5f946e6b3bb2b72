import Testing

@testable import BatonS3

/// The object keys of the documented layout: names keep letters, digits and `-`, every other byte is `_XX`, long
/// names are hashed, so object keys need no percent-encoding and `.` always separates names.
@Suite struct S3LayoutTests {
    @Test(arguments: [
        ("orders", "orders"),
        ("jobs/cleaner", "jobs_2Fcleaner"),
        ("a.b", "a_2Eb"),
        ("a_2Eb", "a_5F2Eb"),
        ("08:00 run~1", "08_3A00_20run_7E1"),
        ("ü", "_C3_BC"),
        ("Case-Sensitive", "Case-Sensitive"),
    ])
    func namesAreWrittenWithoutPercentEncoding(_ name: String, _ expected: String) {
        #expect(S3LeaseStore.encodeName(name) == expected)
    }

    @Test func longNamesAreHashedSoObjectKeysStayShort() {
        let long = String(repeating: "é", count: 128)  // 256 bytes, 768 once written as _XX
        let encoded = S3LeaseStore.encodeName(long)
        #expect(encoded.hasPrefix("~"))
        #expect(encoded.utf8.count == 65)
        #expect(encoded != S3LeaseStore.encodeName(String(repeating: "é", count: 127) + "e"))
        // Nothing else starts with `~`: it is always written `_7E`.
        #expect(!S3LeaseStore.encodeName("~" + String(repeating: "a", count: 64)).hasPrefix("~"))
    }

    @Test func objectKeysOfEachKind() throws {
        let store = try S3LeaseStore(
            "s3://bucket/baton/?endpoint=http://127.0.0.1:1",
            environment: ["AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"]
        )
        #expect(store.leaseObject("orders") == "baton/lease.orders")
        #expect(store.roundObject("nightly", "2026-11-23") == "baton/round.nightly.2026-11-23")
        #expect(store.presencePrefix("workers") + S3LeaseStore.encodeName("node-1") == "baton/presence.workers.node-1")
        // A group that looks like another group's member stays apart.
        #expect(!store.presencePrefix("workers.node-1").hasPrefix(store.presencePrefix("workers")))
    }
}
