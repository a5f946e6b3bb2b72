import BatonTestKit
import InMemoryTracing
import Testing
import Tracing

@testable import Baton

/// Traces of store requests and of terms, recorded by an in-memory tracer given to the store's front.
@Suite("Traces")
struct TracingTests {
    func spans(_ tracer: InMemoryTracer, named name: String) -> [FinishedInMemorySpan] {
        tracer.finishedSpans.filter { $0.operationName == name }
    }

    func token(_ span: FinishedInMemorySpan) -> Int64? {
        if case .int64(let value)? = span.attributes["baton.token"]?.toSpanAttribute() { return value }
        return nil
    }

    func string(_ span: FinishedInMemorySpan, _ name: String) -> String? {
        if case .string(let value)? = span.attributes[name]?.toSpanAttribute() { return value }
        return nil
    }

    @Test("every term's start and end are traced exactly once per token, linked, with its requests as children")
    func everyTermOnce() async throws {
        let tracer = InMemoryTracer()
        let faults = FaultInjectingStore(wrapping: MemoryLeaseStore())
        let store = LeaseStore(faults, configuration: .init(tracer: tracer))
        let configuration = ElectorConfiguration(ttl: .seconds(3), renewInterval: .milliseconds(100))
        let electors = try (0..<3).map { index in
            try LeaderElector(store: store, key: "traced", holder: "h\(index)", configuration: configuration)
        }
        // Terms that end by resigning, each working long enough to renew, several holders in turn.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for elector in electors {
                group.addTask {
                    for _ in 0..<2 {
                        try await elector.withLeadership { _ in try await Task.sleep(for: .milliseconds(250)) }
                    }
                }
            }
            try await group.waitForAll()
        }
        // A term that ends at its deadline: its holder cannot reach the store.
        let lost = Task {
            try await electors[0].withLeadership { lease in
                faults.partition()
                try await Task.sleep(for: .seconds(10))
                return lease
            }
        }
        await #expect(throws: BatonError.self) { try await lost.value }
        faults.heal()

        let starts = spans(tracer, named: "baton.term.start")
        let ends = spans(tracer, named: "baton.term.end")
        let startTokens = starts.compactMap(token)
        #expect(startTokens.count == 7, "terms: \(startTokens)")
        #expect(Set(startTokens).count == startTokens.count, "a term's start was traced twice: \(startTokens)")
        #expect(ends.compactMap(token).sorted() == startTokens.sorted(), "every term ends once")
        for end in ends {
            let start = try #require(starts.first { token($0) == token(end) })
            #expect(end.links.count == 1)
            #expect(end.links.first?.context.inMemorySpanContext?.spanID == start.spanID)
            #expect(end.parentSpanID == start.spanID)
            #expect(string(end, "baton.key") == "traced")
            #expect(string(end, "baton.holder") == string(start, "baton.holder"))
        }
        #expect(ends.compactMap { string($0, "baton.reason") }.filter { $0 != "resigned" }.count == 1)
        // The renews and the release of a term are children of its start.
        let renews = spans(tracer, named: "baton.renew")
        #expect(!renews.isEmpty)
        for request in renews + spans(tracer, named: "baton.release") {
            let start = starts.first { token($0) == token(request) }
            #expect(start != nil && request.parentSpanID == start?.spanID, "\(request.operationName) of a term")
        }
        // Acquires say what they got; the lost term's failed renews record their error.
        let acquires = spans(tracer, named: "baton.acquire")
        #expect(acquires.contains { string($0, "baton.outcome") == "acquired" })
        #expect(acquires.contains { string($0, "baton.outcome") == "held" })
        #expect(renews.contains { !$0.errors.isEmpty && $0.status?.code == .error })
    }

    @Test("a store without a tracer traces nothing")
    func noTracer() {
        // This test process bootstraps no tracer: the global one is the no-op tracer.
        #expect(LeaseStore(MemoryLeaseStore()).core.tracing == nil)
        #expect(LeaseStore(MemoryLeaseStore(), configuration: .init(tracer: NoOpTracer())).core.tracing == nil)
        #expect(LeaseStore(MemoryLeaseStore(), configuration: .init(tracer: InMemoryTracer())).core.tracing != nil)
    }
}
