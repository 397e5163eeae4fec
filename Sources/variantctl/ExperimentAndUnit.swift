import ArgumentParser

/// An experiment and a unit, as `assign`, `prompt` and `render` take them: two words (`assign E U`), or
/// `--experiment E --unit U`, or a mix; `prompt` and `render` also take a prompt's name alone.
struct ExperimentAndUnit: ParsableArguments {
    @Argument(help: "An experiment and a unit (or --experiment and --unit); for prompt and render, or a prompt's name.")
    var words: [String] = []

    @Option(help: "The experiment's name.")
    var experiment: String?

    @Option(help: "The unit id (user, session or request).")
    var unit: String?

    /// For `assign`: the options, and the words in order for whichever the options leave out.
    /// - Throws: `ValidationError` when one is missing or there are more words than places for them.
    func resolved() throws -> (experiment: String, unit: String) {
        var experiment = self.experiment
        var unit = self.unit
        for word in words {
            if experiment == nil {
                experiment = word
            } else if unit == nil {
                unit = word
            } else {
                throw ValidationError("unexpected '\(word)': the experiment and the unit are already given")
            }
        }
        guard let experiment, let unit else {
            throw ValidationError("give the experiment and the unit: EXPERIMENT UNIT, or --experiment E --unit U")
        }
        return (experiment, unit)
    }

    /// For `prompt` and `render`: a prompt's name (one word), or an experiment and a unit (two words), with the
    /// options as given.
    /// - Throws: `ValidationError` for more than two words, or two words besides `--experiment` or `--unit`.
    func promptSubject() throws -> (name: String?, experiment: String?, unit: String?) {
        switch words.count {
        case 0: return (nil, experiment, unit)
        case 1: return (words[0], experiment, unit)
        case 2 where experiment == nil && unit == nil: return (nil, words[0], words[1])
        case 2: throw ValidationError("give the experiment and the unit as words or as --experiment and --unit, not both")
        default: throw ValidationError("give a prompt name, or an experiment and a unit; found \(words.count) words")
        }
    }
}
