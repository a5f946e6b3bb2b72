@_spi(BatonStoreKit) import Baton
import Foundation
import GRPCCore
import GRPCProtobuf
import SwiftProtobuf

extension EtcdLeaseStore {
    /// One transaction: `success` runs if every comparison holds, else `failure`.
    func txn(
        _ what: String,
        compare: [Etcdserverpb_Compare],
        success: [Etcdserverpb_RequestOp],
        failure: [Etcdserverpb_RequestOp] = []
    ) async throws -> Etcdserverpb_TxnResponse {
        let request = Etcdserverpb_TxnRequest.with {
            $0.compare = compare
            $0.success = success
            $0.failure = failure
        }
        let options = client.options()
        return try await client.call(what) { grpc, metadata in
            try await Etcdserverpb_KV.Client(wrapping: grpc).txn(request, metadata: metadata, options: options)
        }
    }

    /// Grants a lease of `seconds`; returns its ID.
    func grant(_ seconds: Int64) async throws -> Int64 {
        let request = Etcdserverpb_LeaseGrantRequest.with { $0.ttl = seconds }
        let options = client.options()
        let response = try await client.call("grant a lease") { grpc, metadata in
            try await Etcdserverpb_Lease.Client(wrapping: grpc).leaseGrant(
                request, metadata: metadata, options: options)
        }
        if !response.error.isEmpty {
            throw BatonError.storeUnavailable("etcd did not grant a lease: \(response.error)")
        }
        return response.id
    }

    /// Revokes a lease, deleting every key attached to it; a lease that is already gone is not an error.
    func revoke(_ lease: Int64) async throws {
        let request = Etcdserverpb_LeaseRevokeRequest.with { $0.id = lease }
        let options = client.options()
        do {
            _ = try await client.call("revoke a lease") { grpc, metadata in
                try await Etcdserverpb_Lease.Client(wrapping: grpc).leaseRevoke(
                    request,
                    metadata: metadata,
                    options: options
                )
            }
        } catch let error as BatonError where Self.isLeaseNotFound(error) {
            return
        }
    }

    /// Whether etcd refused a request because a lease it names is gone.
    static func isLeaseNotFound(_ error: BatonError) -> Bool {
        error.underlying.map { "\($0)" }?.contains("lease not found") == true
    }

    /// Refreshes a lease over the store's `LeaseKeepAlive` stream; returns the TTL etcd answered, 0 if the
    /// lease is gone.
    func keepAlive(_ lease: Int64) async throws -> Int64 {
        let ttl = try await keepAlives.keepAlive(lease, timeout: EtcdClient.callTimeout)
        if ttl <= 0 { sessionLeases.lost(lease) }
        return ttl
    }

    /// The renew of many terms at once: whether each is still its own (its key there, with its create revision,
    /// on its lease), in one transaction of reads, and a keep-alive of each lease they are on (usually one
    /// session lease), sent together after every renew in the batch was asked. Returns the ``TermCheck/batchKey``
    /// of each term that is its own and whose lease etcd still has.
    func checkTerms(_ checks: [TermCheck]) async throws -> Set<String> {
        // The keep-alives go out in one child task, the reads in this one: a renew of one term costs one task more
        // than its two messages.
        if checks.count == 1, let check = checks.first {
            // A lone term: etcd compares, and answers with one flag instead of the key.
            async let left = keepAlive(check.lease)
            let answer = try await txn(
                "renew",
                compare: [
                    .createRevision(of: check.key, equals: check.revision), .lease(of: check.key, equals: check.lease),
                ],
                success: [])
            return try await left > 0 && answer.succeeded ? [check.batchKey] : []
        }
        async let aliveLeases = liveLeases(Set(checks.map(\.lease)))
        let answer = try await txn("renew", compare: [], success: checks.map { .keyOnly($0.key) })
        let alive = try await aliveLeases
        var held = Set<String>()
        for (check, response) in zip(checks, answer.responses) where alive.contains(check.lease) {
            guard let found = response.responseRange.kvs.first else { continue }
            if found.createRevision == check.revision, found.lease == check.lease { held.insert(check.batchKey) }
        }
        return held
    }

    /// Which of `leases` etcd still has, after a keep-alive of each (sent together).
    private func liveLeases(_ leases: Set<Int64>) async throws -> Set<Int64> {
        if leases.count == 1, let lease = leases.first {
            return try await keepAlive(lease) > 0 ? [lease] : []
        }
        return try await withThrowingTaskGroup(of: (Int64, Int64).self) { group in
            for lease in leases { group.addTask { (lease, try await self.keepAlive(lease)) } }
            var alive = Set<Int64>()
            for try await (lease, ttl) in group where ttl > 0 { alive.insert(lease) }
            return alive
        }
    }

    /// A term whose renew checks in etcd that it is still its own (``checkTerms(_:)``).
    struct TermCheck: BatchedRequest {
        /// The term's candidate key.
        var key: Data
        var revision: Int64
        var lease: Int64

        var batchKey: String { String(decoding: key, as: UTF8.self) }
    }

    /// Watches every key under `prefix`, calling `onChange` with the answer once the watch is set up and after
    /// every batch of events, until the stream fails (it throws) or the task is cancelled.
    /// With `startRevision`, the watch begins with the events at that revision (else with those after it is set
    /// up).
    static func watch(
        _ client: EtcdClient,
        prefix: Data,
        startRevision: Int64? = nil,
        onChange: @escaping @Sendable (Etcdserverpb_WatchResponse) -> Void
    ) async throws {
        let request = Etcdserverpb_WatchRequest.with {
            $0.createRequest = .with {
                $0.key = prefix
                $0.rangeEnd = EtcdKeyLayout.rangeEnd(prefix)
                if let startRevision { $0.startRevision = startRevision }
            }
        }
        var options = client.options()
        options.timeout = nil
        try await client.call("watch", stream: true) { grpc, metadata in
            try await Etcdserverpb_Watch.Client(wrapping: grpc).watch(
                metadata: metadata,
                options: options,
                requestProducer: { writer in
                    try await writer.write(request)
                    // Keep the request side open until the call ends: etcd ends the watch when it closes.
                    while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
                },
                onResponse: { response in
                    for try await answer in response.messages {
                        if answer.canceled {
                            throw RPCError(
                                code: .unavailable, message: "etcd canceled the watch: \(answer.cancelReason)")
                        }
                        if answer.created || !answer.events.isEmpty { onChange(answer) }
                    }
                    throw RPCError(code: .unavailable, message: "the watch stream ended")
                }
            )
        }
    }
}

extension Etcdserverpb_RequestOp {
    static func put(_ key: Data, value: Data, lease: Int64) -> Self {
        .with {
            $0.requestPut = .with {
                $0.key = key
                $0.value = value
                $0.lease = lease
            }
        }
    }

    /// A put that changes the value and keeps the key's lease.
    static func put(_ key: Data, value: Data, keepLease: Bool) -> Self {
        .with {
            $0.requestPut = .with {
                $0.key = key
                $0.value = value
                $0.ignoreLease = keepLease
            }
        }
    }

    /// A put that moves the key to another lease and keeps its value.
    static func put(_ key: Data, lease: Int64) -> Self {
        .with {
            $0.requestPut = .with {
                $0.key = key
                $0.lease = lease
                $0.ignoreValue = true
            }
        }
    }

    static func delete(_ key: Data) -> Self {
        .with { $0.requestDeleteRange = .with { $0.key = key } }
    }

    static func get(_ key: Data) -> Self {
        .with { $0.requestRange = .with { $0.key = key } }
    }

    /// The key without its value (its create revision and lease are there).
    static func keyOnly(_ key: Data) -> Self {
        .with {
            $0.requestRange = .with {
                $0.key = key
                $0.keysOnly = true
            }
        }
    }

    /// Every key under `prefix`, oldest creation first.
    /// With `serializable`, read from the member's own copy without a round of consensus (it may be a moment old);
    /// a transaction of serializable reads only is answered that way.
    static func rangeByCreation(_ prefix: Data, serializable: Bool = false) -> Self {
        .with {
            $0.requestRange = .with {
                $0.key = prefix
                $0.rangeEnd = EtcdKeyLayout.rangeEnd(prefix)
                $0.sortOrder = .ascend
                $0.sortTarget = .create
                $0.serializable = serializable
            }
        }
    }

    static func nested(compare: [Etcdserverpb_Compare], success: [Etcdserverpb_RequestOp]) -> Self {
        .with {
            $0.requestTxn = .with {
                $0.compare = compare
                $0.success = success
            }
        }
    }
}

extension Etcdserverpb_Compare {
    /// The key's create revision equals `revision` (0: the key does not exist).
    static func createRevision(of key: Data, equals revision: Int64) -> Self {
        .with {
            $0.key = key
            $0.target = .create
            $0.result = .equal
            $0.createRevision = revision
        }
    }

    /// The key's modification revision equals `revision`.
    static func modRevision(of key: Data, equals revision: Int64) -> Self {
        .with {
            $0.key = key
            $0.target = .mod
            $0.result = .equal
            $0.modRevision = revision
        }
    }

    /// No key under `prefix` exists (etcd compares an empty range as one key with create revision 0).
    static func noKeys(under prefix: Data) -> Self {
        .with {
            $0.key = prefix
            $0.rangeEnd = EtcdKeyLayout.rangeEnd(prefix)
            $0.target = .create
            $0.result = .equal
            $0.createRevision = 0
        }
    }

    /// The key is attached to `lease`.
    static func lease(of key: Data, equals lease: Int64) -> Self {
        .with {
            $0.key = key
            $0.target = .lease
            $0.result = .equal
            $0.lease = lease
        }
    }

    /// The key's value equals `value`.
    static func value(of key: Data, equals value: Data) -> Self {
        .with {
            $0.key = key
            $0.target = .value
            $0.result = .equal
            $0.value = value
        }
    }

    /// No key under `prefix` was created after `revision` (etcd compares every key of a range, and an empty range
    /// as one key that does not exist, created at revision 0).
    static func noKeys(under prefix: Data, createdAfter revision: Int64) -> Self {
        .with {
            $0.key = prefix
            $0.rangeEnd = EtcdKeyLayout.rangeEnd(prefix)
            $0.target = .create
            $0.result = .less
            $0.createRevision = revision + 1
        }
    }

    /// No key under `prefix` was created before `revision`.
    static func noKeys(under prefix: Data, createdBefore revision: Int64) -> Self {
        .with {
            $0.key = prefix
            $0.rangeEnd = EtcdKeyLayout.rangeEnd(prefix)
            $0.target = .create
            $0.result = .greater
            $0.createRevision = revision - 1
        }
    }
}
