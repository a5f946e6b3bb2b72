import Testing

@testable import BatonS3

/// Listings read names back from object keys: escaping is undone exactly, and nothing else is taken for a name.
@Suite struct S3ListingLayoutTests {
    @Test(arguments: [
        "orders", "jobs/cleaner", "a.b", "a_2Eb", "é/ü", "g[ab]*?", "-", String(repeating: "x", count: 256),
    ])
    func escapingIsUndone(name: String) {
        let escaped = S3LeaseStore.escapeName(name)
        #expect(S3LeaseStore.unescapeName(Substring(escaped).utf8) == name)
    }

    @Test(arguments: ["", "a.b", "a_2", "a_zz", "~0123abcd", "a_FF", "a b"])
    func otherKeysAreNoNames(part: String) {
        #expect(S3LeaseStore.unescapeName(Substring(part).utf8) == nil)
    }

    @Test func longNamesAreHashedButNotTheirPrefixes() {
        let name = String(repeating: "é", count: 100)
        #expect(S3LeaseStore.encodeName(name).hasPrefix("~"))
        #expect(S3LeaseStore.escapeName(name).hasPrefix(S3LeaseStore.escapeName("éé")))
    }
}
