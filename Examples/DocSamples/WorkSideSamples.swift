import Baton
import BatonHummingbird
import BatonPostgres
import BatonSQLite
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import Tracing

// The samples of FencingAtTheResource.md, TracingTerms.md and RunningWorkOncePerSchedule.md's ScheduledJob, compiled
// (see DocSamples.swift).

/// FencingAtTheResource.md, "A file: the fenced ledger".
func recordJobsInALedger(elector: LeaderElector, jobs: [Int]) async throws {
    let ledger = FencedLedger(path: "/var/lib/cleaner/ledger")
    try await elector.withLeadership { lease in
        for job in jobs {
            try await clean(job)
            try ledger.append("job \(job) done", token: lease.token, resource: lease.key)
        }
    }
}

/// FencingAtTheResource.md, "In memory, and in a Hummingbird service": the fence alone.
func applyFenced(token: FencingToken, key: String, change: ByteBuffer) async throws {
    let fence = TokenFence()
    try await fence.withAdmission(token, for: key) {
        try await invoices.apply(change)
    }
}

/// FencingAtTheResource.md: the middleware.
func fencedRouter() -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: FencingMiddleware())
    router.post("/invoices") { request, _ -> HTTPResponse.Status in
        try await invoices.apply(try await request.body.collect(upTo: 65_536))
        return .created
    }
    return router
}

/// FencingAtTheResource.md, "PostgreSQL: in the writing transaction".
func deleteDraftsFenced(client: PostgresClient, lease: Lease, owner: String, logger: Logger) async throws {
    try await client.withTransaction(logger: logger) { connection in
        try await PostgresFencing.admit(lease.token, for: lease.key, on: connection, logger: logger)
        try await connection.query("DELETE FROM drafts WHERE owner = \(owner)", logger: logger)
    }
}

/// TracingTerms.md, "Overview".
func tracedStore(tracer: some Tracer) throws -> LeaderElector {
    InstrumentationSystem.bootstrap(tracer)
    let store = LeaseStore(try SQLiteLeaseStore(path: "baton.db"))  // its front picks up the tracer
    let elector = try LeaderElector(store: store, key: "jobs/cleaner")
    return elector
}

/// TracingTerms.md, "A term in a trace".
func cleanInASpan(elector: LeaderElector) async throws {
    try await elector.withLeadership { lease in
        try await withSpan("clean old uploads") { span in
            span.attributes["cleaner.token"] = lease.token
            try await cleanOldUploads(fencingToken: lease.token)
        }
    }
}

/// RunningWorkOncePerSchedule.md, "A distributed cron: ScheduledJob".
func nightlyCleaner(store: LeaseStore) async throws {
    let job = try ScheduledJob(
        store: store, key: "nightly-cleaner", schedule: try CronSchedule("0 3 * * *"),
        policy: CronPolicy(catchUpWindow: .seconds(6 * 3600)))
    try await job.run { round in
        try await cleanUp(fencingToken: round.token)
    }
}

/// What these samples take for granted.
func clean(_ job: Int) async throws {}

func cleanOldUploads(fencingToken: FencingToken) async throws {}

func cleanUp(fencingToken: FencingToken) async throws {}

/// The resource the fenced samples write to.
let invoices = Invoices()

struct Invoices: Sendable {
    func apply(_ change: ByteBuffer) async throws {}
}
