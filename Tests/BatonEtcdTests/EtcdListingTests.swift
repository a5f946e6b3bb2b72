import Foundation
import Testing

@testable import BatonEtcd

/// Listings read election names from etcd keys in `concurrency.Election`'s layout, `<KEY>/<lease ID in hex>`.
@Suite struct EtcdListingTests {
    @Test func candidateKeysNameTheirElection() {
        #expect(EtcdLeaseStore.electionName(of: Data("jobs/cleaner/694d7a1b2c3d4e5f".utf8)) == "jobs/cleaner")
        #expect(EtcdLeaseStore.electionName(of: Data("k/1".utf8)) == "k")
        #expect(EtcdLeaseStore.electionName(of: Data("a//ff".utf8)) == "a/")
    }

    @Test(arguments: ["plain", "k/", "/abc", "k/ABC", "k/xyz", "k/12345678901234567", "k/12 3"])
    func otherKeysAreNoCandidates(key: String) {
        #expect(EtcdLeaseStore.electionName(of: Data(key.utf8)) == nil)
    }
}
