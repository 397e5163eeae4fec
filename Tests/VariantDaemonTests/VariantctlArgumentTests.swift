import Testing

/// `variantctl`'s arguments say what to do when mistyped, and take an experiment and a unit the same ways in
/// every command (issue 16, "Errors that say what to do").
@Suite(.serialized) struct VariantctlArgumentTests {
    @Test func anUnknownCommandSuggestsTheNearOnes() throws {
        let typo = try runCommand("variantctl", ["stauts"])
        #expect(typo.status == 64)
        #expect(typo.stderr.contains("unknown command 'stauts'; did you mean 'status' or 'stats'?"), "\(typo.stderr)")
        let far = try runCommand("variantctl", ["launch-rockets"])
        #expect(far.status == 64 && far.stderr.contains("unknown command 'launch-rockets' (commands: validate, "))
        #expect(try runCommand("variantctl", ["help", "assign"]).status == 0)
    }

    @Test func assignPromptAndRenderTakeTheExperimentAndUnitAsWordsOrOptions() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let socket = ["--socket", daemon.socketPath, "--json"]
        for command in ["assign", "prompt", "render"] {
            let rest = socket + (command == "render" ? ["--var", "store_name=Acme", "--var", "customer_name=Ada"] : [])
            let words = try runCommand("variantctl", [command, "checkout-prompt", "user-1"] + rest)
            let options = try runCommand("variantctl", [command, "--experiment", "checkout-prompt", "--unit", "user-1"] + rest)
            let mixed = try runCommand("variantctl", [command, "--unit", "user-1", "checkout-prompt"] + rest)
            #expect(words.stdout.contains(#""experiment":"checkout-prompt""#), "\(command): \(words.stdout) \(words.stderr)")
            #expect(words.stdout == options.stdout && words.status == options.status, "\(command)")
            if command == "assign" { #expect(mixed.stdout == words.stdout) }
        }
        let tooMany = try runCommand("variantctl", ["assign", "checkout-prompt", "user-1", "extra"] + socket)
        #expect(tooMany.status == 64 && tooMany.stderr.contains("unexpected 'extra'"))
        #expect(daemon.stop() == 0)
    }
}
