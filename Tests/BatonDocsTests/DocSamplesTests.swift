import Foundation
import Testing

/// Every ```swift block of README.md and Sources/Baton/Baton.docc must be code that compiles: either a package
/// manifest (checked by `swift package dump-package`), or lines of Examples/DocSamples, which the build compiles.
@Suite("Documentation samples")
struct DocSamplesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The documents whose Swift samples are checked, relative to the package root.
    static let documents: [String] = {
        let catalog = root.appendingPathComponent("Sources/Baton/Baton.docc")
        let articles = (try? FileManager.default.contentsOfDirectory(atPath: catalog.path)) ?? []
        return ["README.md"] + articles.filter { $0.hasSuffix(".md") }.sorted().map { "Sources/Baton/Baton.docc/\($0)" }
    }()

    /// One ```swift block: where it is and its lines.
    struct Sample: CustomStringConvertible {
        var document: String
        var line: Int
        var lines: [String]
        var description: String { "\(document):\(line)" }
        var isManifest: Bool { lines.first?.hasPrefix("// swift-tools-version") ?? false }
    }

    static func samples(in document: String) throws -> [Sample] {
        let text = try String(contentsOf: root.appendingPathComponent(document), encoding: .utf8)
        var samples: [Sample] = []
        var current: Sample?
        for (index, line) in text.components(separatedBy: "\n").enumerated() {
            if var sample = current {
                if line.trimmingCharacters(in: .whitespaces) == "```" {
                    samples.append(sample)
                    current = nil
                } else {
                    sample.lines.append(line)
                    current = sample
                }
            } else if line.trimmingCharacters(in: .whitespaces) == "```swift" {
                current = Sample(document: document, line: index + 2, lines: [])
            }
        }
        #expect(current == nil, "\(document): a ```swift block is not closed")
        return samples
    }

    static func compiledSamples() throws -> [String] {
        let folder = root.appendingPathComponent("Examples/DocSamples")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        return try files.sorted().map { try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8) }
    }

    /// Whether `sample` (without its `import` lines) occurs in `file` as consecutive lines, all indented alike.
    static func contains(_ file: [String], _ sample: [String]) -> Bool {
        guard let first = sample.first, file.count >= sample.count else { return false }
        for start in 0...(file.count - sample.count) where file[start].hasSuffix(first) {
            let indent = String(file[start].dropLast(first.count))
            guard indent.allSatisfy({ $0 == " " }) else { continue }
            let matches = zip(file[start..<(start + sample.count)], sample).allSatisfy { compiled, line in
                line.isEmpty ? compiled.isEmpty : compiled == indent + line
            }
            if matches { return true }
        }
        return false
    }

    @Test("the documents have Swift samples to check")
    func documentsHaveSamples() throws {
        #expect(Self.documents.contains("Sources/Baton/Baton.docc/GettingStarted.md"))
        #expect(try !Self.samples(in: "README.md").isEmpty)
        #expect(try !Self.samples(in: "Sources/Baton/Baton.docc/GettingStarted.md").isEmpty)
    }

    @Test("every Swift sample is compiled code of Examples/DocSamples", arguments: documents)
    func samplesAreCompiled(document: String) throws {
        let files = try Self.compiledSamples().map { $0.components(separatedBy: "\n") }
        let imports = Set(files.joined().filter { $0.hasPrefix("import ") })
        for sample in try Self.samples(in: document) where !sample.isManifest {
            let sampleImports = sample.lines.filter { $0.hasPrefix("import ") }
            for line in sampleImports {
                #expect(imports.contains(line), "\(sample): \"\(line)\" is not imported by Examples/DocSamples")
            }
            var code = Array(sample.lines.drop { $0.hasPrefix("import ") || $0.isEmpty })
            while code.last?.isEmpty == true { code.removeLast() }
            #expect(!code.isEmpty, "\(sample): the sample has no code")
            #expect(
                files.contains { Self.contains($0, code) },
                "\(sample): these lines are not in Examples/DocSamples (edit both, so the sample keeps compiling)"
            )
        }
    }

    @Test("every package manifest sample loads", arguments: documents)
    func manifestsLoad(document: String) throws {
        for sample in try Self.samples(in: document) where sample.isManifest {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("baton-manifest-\(UUID())")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            try sample.lines.joined(separator: "\n").write(
                to: folder.appendingPathComponent("Package.swift"),
                atomically: true,
                encoding: .utf8
            )
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["swift", "package", "dump-package", "--package-path", folder.path]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(sample): swift package dump-package failed:\n\(printed)")
        }
    }
}
