import Foundation
import Recipe
import Services
import Testing

/// The recipe's keys are declared once (RecipeSchema): the decoder rejects every other key,
/// docs/recipe.md documents exactly these keys with their types and defaults, and each
/// declared default is what the decoder assumes when the key is absent.
@Suite struct SchemaTests {
    /// One row of a key table in docs/recipe.md.
    struct Row: Equatable {
        let key: String
        let type: String
        let defaultCell: String
    }

    /// The `## ...` sections of docs/recipe.md, each with the rows of its key table and its text.
    static func sections() throws -> [String: (rows: [Row], text: String)] {
        let text = try String(contentsOfFile: packageRoot + "/docs/recipe.md", encoding: .utf8)
        var result: [String: (rows: [Row], text: String)] = [:]
        var heading: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("## ") {
                heading = String(line.dropFirst(3))
                result[heading ?? ""] = ([], "")
                continue
            }
            guard let heading else { continue }
            result[heading]?.text += line + "\n"
            guard line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard cells.count >= 4, cells[0].hasPrefix("`"), cells[0].hasSuffix("`") else { continue }
            result[heading]?.rows.append(Row(key: String(cells[0].dropFirst().dropLast()), type: cells[1], defaultCell: cells[2]))
        }
        return result
    }

    static func heading(of table: RecipeTableSchema) -> String {
        table.isArray ? "`[[\(table.path)]]`" : "`[\(table.path)]`"
    }

    /// The rows that document `table`: its section's rows, or for a nested array of tables
    /// (snapshots.tree) the `tree[].KEY` rows of its parent's section.
    static func rows(of table: RecipeTableSchema, in sections: [String: (rows: [Row], text: String)]) -> [Row]? {
        let parts = table.path.split(separator: ".").map(String.init)
        if parts.count == 2 {
            let prefix = parts[1] + "[]."
            return sections["`[\(parts[0])]`"]?.rows.filter { $0.key.hasPrefix(prefix) }
                .map { Row(key: String($0.key.dropFirst(prefix.count)), type: $0.type, defaultCell: $0.defaultCell) }
        }
        let rows = table.path.isEmpty ? sections["Top level"]?.rows : sections[heading(of: table)]?.rows
        return rows?.filter { !$0.key.contains("[]") }
    }

    static func check(_ keys: [RecipeKey], against rows: [Row], table: String) {
        #expect(Set(rows.map(\.key)) == Set(keys.map(\.name)),
                "docs/recipe.md documents \(rows.map(\.key)) for \(table), the schema declares \(keys.map(\.name))")
        #expect(rows.count == Set(rows.map(\.key)).count, "a key of \(table) is documented twice")
        for key in keys {
            guard let row = rows.first(where: { $0.key == key.name }) else { continue }
            let typeWords = row.type.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(typeWords.first == key.type, "\(table).\(key.name): the docs say \(row.type), the schema \(key.type)")
            #expect(typeWords.contains("**required**") == key.required,
                    "\(table).\(key.name): required is \(key.required) in the schema, the docs say \(row.type)")
            if let value = key.defaultValue {
                #expect(row.defaultCell == "`\(value)`", "\(table).\(key.name): the docs show the default \(row.defaultCell), the schema \(value)")
            } else {
                let isOneCodeSpan = row.defaultCell.hasPrefix("`") && row.defaultCell.hasSuffix("`")
                    && row.defaultCell.filter { $0 == "`" }.count == 2
                #expect(!isOneCodeSpan, "\(table).\(key.name): the docs show the default \(row.defaultCell), which the schema does not declare")
            }
        }
    }

    @Test func docsListExactlyTheTopLevelKeysAndTables() throws {
        let sections = try SchemaTests.sections()
        let plain = RecipeSchema.topLevel.keys.filter { !$0.type.hasSuffix("table") && !$0.type.hasSuffix("tables") }
        let rows = try #require(SchemaTests.rows(of: RecipeSchema.topLevel, in: sections), "docs/recipe.md has a 'Top level' section")
        SchemaTests.check(plain, against: rows, table: "the top level")

        let tableKeys = RecipeSchema.topLevel.keys.filter { $0.type == "table" || $0.type == "array of tables" }
        let documented = Set(sections.keys.filter { $0.hasPrefix("`[") })
        let declared = Set(tableKeys.map { $0.type == "table" ? "`[\($0.name)]`" : "`[[\($0.name)]]`" })
        #expect(documented == declared, "docs/recipe.md has sections \(documented.sorted()), the schema declares \(declared.sorted())")
        let nested = Set(RecipeSchema.tables.filter { !$0.path.contains(".") }.map(SchemaTests.heading))
        #expect(nested == declared, "every top-level table has a schema of its keys")
    }

    @Test(arguments: RecipeSchema.tables.filter { $0.path != "services" }.map(\.path))
    func docsListExactlyTheKeysOf(_ path: String) throws {
        let table = try #require(RecipeSchema.tables.first { $0.path == path })
        let rows = try #require(SchemaTests.rows(of: table, in: try SchemaTests.sections()), "docs/recipe.md documents \(path)")
        SchemaTests.check(table.keys, against: rows, table: path)
    }

    /// [[services]] takes a service definition's keys (documented in services.md) and a name;
    /// recipe.md names them in a sentence.
    @Test func docsNameEveryServiceKey() throws {
        let text = try #require(try SchemaTests.sections()["`[[services]]`"]?.text)
        let start = try #require(text.range(of: "(services.md):"), "the [[services]] section points to services.md for the keys")
        let end = try #require(text.range(of: ". ", range: start.upperBound..<text.endIndex))
        let spans = text[start.upperBound..<end.lowerBound].split(separator: "`", omittingEmptySubsequences: false)
        let listed = stride(from: 1, to: spans.count, by: 2).map { String(spans[$0]) }
        #expect(Set(listed) == Set(ServiceDefinition.keys), "docs/recipe.md lists \(listed), a definition has \(ServiceDefinition.keys)")
        #expect(text.contains("has a `name`"))
        #expect(RecipeSchema.serviceKeyNames == ["name"] + ServiceDefinition.keys)
    }

    /// Keys the decoder requires, so that a table holding only the key under test parses (by
    /// table, or by "TABLE KEY" for one key).
    static let companions: [String: String] = [
        "kernel": "source = \"/src/linux\"\n",
        "users": "name = \"admin\"\n",
        "containers": "image = \"docker.io/library/busybox:1.36\"\n",
        "snapshots.tree": "id = 1\nparent = 0\n",
        "network dns": "mode = \"static\"\naddress = \"10.0.0.2/24\"\n",
    ]
    /// Defaults that are not values: one derived from another key, one a pattern.
    static let derivedDefaults: Set<String> = ["boot_test.firmware", "kernel.package"]

    static func describe(_ recipe: Recipe, _ path: String) -> String {
        switch path.split(separator: ".").first.map(String.init) ?? "" {
        case "kernel": String(reflecting: recipe.kernel)
        case "packages": String(reflecting: recipe.packages)
        case "system": String(reflecting: recipe.system)
        case "users": String(reflecting: recipe.users)
        case "containers": String(reflecting: recipe.containers)
        case "snapshots": String(reflecting: recipe.snapshots)
        case "disk": String(reflecting: recipe.disk)
        case "output": String(reflecting: recipe.output)
        case "boot_test": String(reflecting: recipe.bootTest)
        case "network": String(reflecting: recipe.network)
        default: "(\(path) is not compared)"
        }
    }

    /// The smallest recipe with `table` (and what `key` needs), with `key` set to its default or not.
    static func text(table: RecipeTableSchema, key: RecipeKey, setting: Bool) -> String {
        let companion = companions[table.path + " " + key.name] ?? companions[table.path] ?? ""
        let line = setting ? "\(key.name) = \(key.defaultValue ?? "")\n" : ""
        if table.path == "packages" { return minimalText + line }
        let header = table.isArray ? "[[\(table.path)]]" : "[\(table.path)]"
        return minimalText + header + "\n" + companion + line
    }

    @Test func everyDeclaredDefaultIsWhatTheDecoderAssumes() throws {
        var compared = 0
        for table in RecipeSchema.tables {
            for key in table.keys where key.defaultValue != nil && !SchemaTests.derivedDefaults.contains(table.path + "." + key.name) {
                let without = try decode(SchemaTests.text(table: table, key: key, setting: false))
                let with = try decode(SchemaTests.text(table: table, key: key, setting: true))
                #expect(SchemaTests.describe(with, table.path) == SchemaTests.describe(without, table.path),
                        "\(table.path).\(key.name) = \(key.defaultValue ?? "") changes the recipe; the declared default is not the decoder's")
                compared += 1
            }
        }
        #expect(compared >= 30, "only \(compared) defaults were compared")
    }

    /// The unknown-key errors list the declared keys.
    @Test func unknownKeysAreCheckedAgainstTheSchema() {
        let errors = problems(minimalText + "[disk]\nsizes = \"2G\"\nflavour = 1\n")
        #expect(errors.map(\.message) == [
            "unknown key 'sizes'; did you mean 'size'?",
            "unknown key 'flavour'; the keys here are " + RecipeSchema.disk.keyNames.map { "'\($0)'" }.joined(separator: ", "),
        ])
    }
}
