// swift-tools-version:6.1
import PackageDescription

/// One settings array for every target.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// `.product(name:package:)` for each of `names`, all from `package`: for targets that use many products of a few
/// packages.
func products(of package: String, _ names: String...) -> [Target.Dependency] {
    names.map { .product(name: $0, package: package) }
}

let package = Package(
    name: "baton",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Baton", targets: ["Baton"]),
        .library(name: "BatonSQLite", targets: ["BatonSQLite"]),
        .library(name: "BatonPostgres", targets: ["BatonPostgres"]),
        .library(name: "BatonTestKit", targets: ["BatonTestKit"]),
        .library(name: "BatonServer", targets: ["BatonServer"]),
        .library(name: "BatonHummingbird", targets: ["BatonHummingbird"]),
        .library(name: "BatonRedis", targets: ["BatonRedis"]),
        .library(name: "BatonS3", targets: ["BatonS3"]),
        .library(name: "BatonEtcd", targets: ["BatonEtcd"]),
        .library(name: "BatonStores", targets: ["BatonStores"]),
        .executable(name: "baton", targets: ["baton"]),
        .executable(name: "baton-chaos", targets: ["baton-chaos"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // BatonPostgres
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // Redis store (BatonRedis)
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        // S3 store (BatonS3)
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // Documentation: `swift package generate-documentation --target Baton` (scripts/test)
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // etcd store (BatonEtcd): gRPC client over HTTP/2, generated code committed (scripts/generate-etcd-grpc)
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        // Traces: spans around store requests and each term (Tracing); the in-memory tracer in tests.
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // Benchmarks (baton-bench): latency percentiles.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        .target(
            name: "Baton",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BatonSQLite",
            dependencies: [
                "Baton",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Redis store (BatonRedis): the store and its RESP client.
        .target(
            name: "BatonRedis",
            dependencies: [
                "Baton",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // S3 store (BatonS3): the store and its SigV4 signer.
        .target(
            name: "BatonS3",
            dependencies: [
                "Baton",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // etcd store (BatonEtcd): the store and its generated gRPC client.
        .target(
            name: "BatonEtcd",
            dependencies: [
                "Baton",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            exclude: ["Proto"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BatonPostgres",
            dependencies: [
                "Baton",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Opening any store by its URL: the one helper the CLI, the benchmarks and the examples share.
        .target(
            name: "BatonStores",
            dependencies: ["Baton", "BatonSQLite", "BatonPostgres", "BatonRedis", "BatonEtcd", "BatonS3"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BatonTestKit",
            dependencies: ["Baton", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BatonServer",
            dependencies: [
                "Baton",
                .product(name: "Hummingbird", package: "hummingbird"),
                // HTTPS (`baton serve --tls-cert`) and the digests of access tokens.
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Fencing at the resource for Hummingbird services: FencingMiddleware.
        .target(
            name: "BatonHummingbird",
            dependencies: [
                "Baton",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "CBatonProcess"),
        .executableTarget(
            name: "baton",
            dependencies: [
                "Baton", "BatonStores", "CBatonProcess", "BatonServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ] + products(of: "swift-service-lifecycle", "ServiceLifecycle", "UnixSignals"),
            swiftSettings: swiftSettings
        ),
        // Tooling, kept in Tools/ apart from the products. The in-process drivers of scripts/bench, and the
        // percentile summary every scenario goes through.
        .executableTarget(
            name: "baton-bench",
            dependencies: [
                "Baton",
                "BatonStores",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tools/baton-bench",
            swiftSettings: swiftSettings
        ),
        // The fault-injection suite of scripts/chaos: the property checker, and the processes it drives.
        .target(
            name: "BatonChaos",
            path: "Tools/BatonChaos",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "baton-chaos",
            dependencies: [
                "Baton",
                "BatonChaos",
                "BatonStores",
                "BatonTestKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Tools/baton-chaos",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonTests",
            dependencies: [
                "Baton",
                "BatonTestKit",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonCLITests",
            dependencies: ["baton", "Baton"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonServerTests",
            dependencies: [
                "baton", "Baton", "BatonServer", "BatonHummingbird", "BatonTestKit",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ] + products(of: "hummingbird", "Hummingbird", "HummingbirdTesting")
                + products(of: "swift-nio", "NIOCore", "NIOHTTP1", "NIOPosix"),
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonSQLiteTests",
            dependencies: [
                "Baton", "BatonSQLite", "BatonTestKit",
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonPostgresTests",
            dependencies: [
                "Baton",
                "BatonPostgres",
                "BatonTestKit",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonChaosTests",
            dependencies: ["BatonChaos"],
            swiftSettings: swiftSettings
        ),
        // Redis store (BatonRedis)
        .testTarget(
            name: "BatonRedisTests",
            dependencies: [
                "Baton",
                "BatonRedis",
                "BatonTestKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // S3 store (BatonS3)
        .testTarget(
            name: "BatonS3Tests",
            dependencies: [
                "Baton",
                "BatonS3",
                "BatonTestKit",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Examples: built with the tests by scripts/test, which also runs the fenced worker against its ledger.
        .target(
            name: "ExampleSupport",
            dependencies: ["Baton"],
            path: "Examples/ExampleSupport",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "HummingbirdSingletonExample",
            dependencies: [
                "Baton",
                "BatonStores",
                "ExampleSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/HummingbirdSingletonExample",
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "FencedWorkerExample",
            dependencies: [
                "Baton",
                "BatonStores",
                "ExampleSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/FencedWorkerExample",
            exclude: ["README.md", "stale-leader.sh"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ShardedConsumerExample",
            dependencies: [
                "Baton",
                "BatonStores",
                "ExampleSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/ShardedConsumerExample",
            exclude: ["README.md"],
            swiftSettings: swiftSettings
        ),
        // The Swift samples of README.md and Baton.docc, compiled; BatonDocsTests checks they match the text.
        .target(
            name: "BatonDocSamples",
            dependencies: [
                "Baton",
                "BatonSQLite",
                "BatonPostgres",
                "BatonHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/DocSamples",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonDocsTests",
            dependencies: ["BatonDocSamples"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BatonStoresTests",
            dependencies: ["Baton", "BatonStores", "BatonSQLite", "BatonS3", "BatonPostgres", "BatonRedis"],
            swiftSettings: swiftSettings
        ),
        // etcd store (BatonEtcd)
        .testTarget(
            name: "BatonEtcdTests",
            dependencies: ["Baton", "BatonEtcd", "BatonTestKit"],
            swiftSettings: swiftSettings
        ),
    ]
)
