from cserver.cli import main

raise SystemExit(main())
