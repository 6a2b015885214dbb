CREATE TABLE celery_taskmeta (
	id INTEGER NOT NULL IDENTITY(1,1), 
	task_id VARCHAR(155) NULL, 
	status VARCHAR(50) NULL, 
	result VARBINARY(max) NULL, 
	date_done DATETIME NULL, 
	traceback VARCHAR(max) NULL, 
	PRIMARY KEY (id), 
	UNIQUE (task_id)
)
;
CREATE TABLE celery_tasksetmeta (
	id INTEGER NOT NULL IDENTITY(1,1), 
	taskset_id VARCHAR(155) NULL, 
	result VARBINARY(max) NULL, 
	date_done DATETIME NULL, 
	PRIMARY KEY (id), 
	UNIQUE (taskset_id)
)
;
