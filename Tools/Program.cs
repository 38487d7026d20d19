return Llm.Tools.Cli.Run(args);
