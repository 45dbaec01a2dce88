from dgm.cli import main

raise SystemExit(main())
