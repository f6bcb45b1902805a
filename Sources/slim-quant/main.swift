import SlimFrontend

// Thin executable: all behaviour lives in SlimFrontend so tests can drive it in-process.
SlimQuantCommand.main()
